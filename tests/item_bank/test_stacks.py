"""Stack tags: an assessment can leave out items that assume a stack, the engine never serves
them, and the candidate is told which stacks the remaining questions assume."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Blueprint, SkillSpec, make_engine
from engine.simulation import simulate
from item_bank.pool import load_item_pool
from item_bank.shipped import import_shipped
from item_bank.stacks import STACKS, assumed_stacks, excluding_stacks, stack_tag


def test_stack_tag_and_excluding_stacks():
    assert stack_tag("Python") == "stack:python" == stack_tag("stack:python")
    with pytest.raises(ValueError, match="unknown stack 'cobol'; known stacks: aws"):
        stack_tag("cobol")
    bp = Blueprint(skills=(SkillSpec("databases", 2, 4),), max_items=4,
                   exclude_tags=("leaked",))
    out = excluding_stacks(bp, ["postgresql", "python", "postgresql"])
    assert out.exclude_tags == ("leaked", "stack:postgresql", "stack:python")
    assert excluding_stacks(bp, []) is bp
    # stored and read back with the blueprint
    assert Blueprint.from_dict(out.to_dict()).exclude_tags == out.exclude_tags


def test_assumed_stacks_follow_skills_and_exclusions(db_session):
    import_shipped(db_session)
    assert assumed_stacks(db_session) == tuple(sorted(STACKS.values()))
    assert assumed_stacks(db_session, ["databases"]) == ("PostgreSQL",)
    assert assumed_stacks(db_session, ["databases"], ["stack:postgresql"]) == ()
    assert assumed_stacks(db_session, ["api_design"]) == ()
    assert "Python" not in assumed_stacks(db_session, None, ["stack:python"])


def test_engine_never_serves_excluded_stacks(db_session):
    import_shipped(db_session)
    skills = ("server_side", "testing", "databases")
    pool = load_item_pool(db_session, skills, with_exposure=False)
    tagged = {iid for iid, tags in pool.tags.items()
              if {"stack:python", "stack:postgresql"} & set(tags)}
    assert len(tagged) >= 8
    bp = excluding_stacks(Blueprint(skills=tuple(SkillSpec(s, 8, 8) for s in skills),
                                    min_items=24, max_items=24, seed=5),
                          ["python", "postgresql"])
    eng = make_engine(pool, bp)
    # extreme abilities too: the tagged items include level-5 items a strong candidate would get
    theta = np.repeat(np.linspace(-2.5, 2.5, 60)[:, None], 3, axis=1)
    result = simulate(eng, theta, rng=1)
    served = {pool.bank.item_ids[i] for i in result.items[result.items >= 0]}
    assert served and not served & tagged
    assert not any(result.eligible[pool.index(i)] for i in tagged)
    # without the exclusion the same simulees do meet tagged items
    plain = simulate(make_engine(pool, Blueprint(skills=bp.skills, min_items=24, max_items=24,
                                                 seed=5)), theta, rng=1)
    assert {pool.bank.item_ids[i] for i in plain.items[plain.items >= 0]} & tagged


def test_engine_never_serves_two_enemies_of_the_shipped_bank(db_session):
    """Enemy pairs marked in the content files (issue 23's among them, across skills too) reach
    the engine through `load_item_pool` and are never served together."""
    import_shipped(db_session)
    skills = ("api_design", "databases", "cloud", "server_side")
    pool = load_item_pool(db_session, skills, with_exposure=False)
    groups = {tuple(sorted(g)) for g in pool.enemy_groups}
    for pair in [("CLD-020", "DB-021"), ("API-012", "DB-022"), ("API-021", "DB-022"),
                 ("API-012", "API-021"), ("CLD-024", "SRV-021")]:
        assert pair in groups
    bp = Blueprint(skills=tuple(SkillSpec(s, 25, 25) for s in skills), min_items=100,
                   max_items=100, seed=3)
    result = simulate(make_engine(pool, bp), np.zeros((40, 4)), rng=2)
    for row in result.items:
        served = {pool.bank.item_ids[i] for i in row[row >= 0]}
        assert len(served) == 100
        assert not [g for g in groups if set(g) <= served]
    # the constraint is what keeps them apart: without it the same design serves pairs together
    from engine import ItemPool

    free = ItemPool(pool.bank, status=pool.status, tags=pool.tags)
    loose = simulate(make_engine(free, bp), np.zeros((40, 4)), rng=2)
    assert any(set(g) <= {pool.bank.item_ids[i] for i in row[row >= 0]}
               for row in loose.items for g in groups)
