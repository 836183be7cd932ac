"""Shadow-test selection: constraints always met, infeasibility at configuration, optimality."""

from __future__ import annotations

import numpy as np
import pytest

import engine
import irt
from engine.errors import ConfigurationError, EngineError
from engine.shadow import ShadowTest, constraint_violations


@pytest.fixture(scope="module")
def constrained(make_bank):
    """3 skills × 100 operational items + 12 pretest items, formats and topics as tags, enemy
    sets across skills, some over-exposed items."""
    bank = make_bank(3, 104, seed=21)
    g = np.random.default_rng(22)
    ids = bank.item_ids
    status = ["pretest" if int(i[3:]) >= 100 else "operational" for i in ids]
    tags = {iid: ["code" if g.random() < 0.3 else "mc"]
            + (["sql"] if g.random() < 0.15 else []) for iid in ids}
    enemies = [[f"s0_{k:03d}", f"s1_{k:03d}", f"s2_{k:03d}"] for k in range(0, 100, 4)]
    enemies.append(["s0_100", "s1_100"])
    rates = {f"s{s}_{k:03d}": 0.4 for s in range(3) for k in range(0, 100, 7)}
    pool = engine.ItemPool(bank, status=status, tags=tags, enemy_groups=enemies,
                           exposure_rates=rates)
    bp = engine.Blueprint(
        skills=(engine.SkillSpec("s0", 6, 8), engine.SkillSpec("s1", 5, 8),
                engine.SkillSpec("s2", 4, 6)),
        max_items=20, pretest_count=2, pretest_positions=(3, 9),
        selector=ShadowTest(tag_counts={"code": [6, 8], "sql": [2, None]}, max_exposure=0.3))
    return pool, bp


def test_every_test_meets_every_constraint(constrained):
    pool, bp = constrained
    eng = engine.make_engine(pool, bp)
    for p in range(15):
        state = eng.start(seed=engine.derive_seed(bp.seed, p))
        answers = np.random.default_rng(p).integers(0, 2, len(pool))
        while state.stop_reason is None:
            state = eng.record(state, state.pending, int(answers[pool.index(state.pending)]))
        assert state.n_items == 20 and state.stop_reason == "max_items"
        served = [e.item_id for e in state.events]
        assert constraint_violations(pool, bp, served) == []
        assert [k + 1 for k, e in enumerate(state.events) if not e.scored] == [3, 9]
        assert all(e.audit.rule == "shadow" for e in state.events if e.scored)


def test_simulation_equals_live_sessions(constrained):
    """Shadow tests through the one step: the batch simulator equals the sessions."""
    pool, bp = constrained
    eng = engine.make_engine(pool, bp)
    theta = np.random.default_rng(5).normal(size=(4, 3))
    answers = engine.simulation.draw_answers(eng, theta, 6)
    res = engine.simulation.simulate(eng, theta, answers=answers)
    for p in range(4):
        state = eng.start(seed=engine.derive_seed(bp.seed, p))
        while state.stop_reason is None:
            state = eng.record(state, state.pending, int(answers[p, pool.index(state.pending)]))
        scored = [e.item_id for e in state.events if e.scored]
        assert [pool.bank.item_ids[i] for i in res.items[p] if i >= 0] == scored
        assert constraint_violations(pool, bp, [e.item_id for e in state.events]) == []


def test_the_checker_finds_violations(constrained):
    pool, bp = constrained
    mc = [iid for iid in pool.bank.item_ids if "code" not in pool.tags[iid]
          and pool.status[pool.index(iid)] == "operational" and iid.startswith("s0")]
    found = constraint_violations(pool, bp, mc[:20])
    assert any("skill 's0'" in v for v in found) and any("tag 'code'" in v for v in found)
    assert any("pretest" in v for v in found)
    assert any("enemy set 0" in v for v in constraint_violations(
        pool, bp, ["s0_000", "s1_000"]))
    assert any("exposure" in v for v in constraint_violations(pool, bp, ["s0_007"]))


def test_without_constraints_the_first_item_is_maximum_information(make_bank):
    bank = make_bank(2, 50, seed=8)
    bp = engine.Blueprint(max_items=10, selector=ShadowTest())
    eng = engine.make_engine(bank, bp)
    state = eng.start(seed=0)
    info = irt.item_information([0.0], bank)[0]
    assert state.pending == bank.item_ids[int(np.argmax(info))]
    # the shadow test is the 10 most informative items
    sol = eng.selector_prepared.solve(np.zeros(len(bank), dtype=bool), eng.base_excluded,
                                      np.zeros(len(eng.skill_names)))
    assert set(sol.items) == set(np.argsort(-info)[:10])
    assert sol.objective == pytest.approx(np.sort(info)[-10:].sum())


def test_shadow_test_is_optimal_under_constraints(make_bank):
    """Brute force on a tiny bank: 12 items, 4 of 'x', length 4 with 2 'x' items, 1 enemy set."""
    bank = make_bank(1, 12, seed=9)
    ids = bank.item_ids
    tags = {iid: ["x"] for iid in ids[:4]}
    pool = engine.ItemPool(bank, tags=tags, enemy_groups=[list(ids[:2])])
    bp = engine.Blueprint(max_items=4, selector=ShadowTest(tag_counts={"x": [2, 2]}))
    eng = engine.make_engine(pool, bp)
    sol = eng.selector_prepared.solve(np.zeros(12, dtype=bool), eng.base_excluded,
                                      np.array([0.5]))
    info = irt.item_information([0.5], bank)[0]
    from itertools import combinations
    best = max((c for c in combinations(range(12), 4)
                if sum(i < 4 for i in c) == 2 and not {0, 1} <= set(c)),
               key=lambda c: info[list(c)].sum())
    assert sol.objective == pytest.approx(info[list(best)].sum(), rel=1e-3)


@pytest.mark.parametrize("selector, skills, message", [
    (ShadowTest(tag_counts={"sql": [30, None]}), (), "tag 'sql'"),
    (ShadowTest(), (engine.SkillSpec("s0", 7), engine.SkillSpec("s1")),
     "skill 's0': 7..8 items: only 6"),
    (ShadowTest(tag_counts={"a": [3, 3], "b": [0, 1]}), (), "jointly infeasible"),
    (ShadowTest(tag_counts={"sql": [0, 1]}), (), "jointly infeasible"),
])
def test_infeasible_constraints_fail_at_configuration(make_bank, selector, skills, message):
    bank = make_bank(2, 6, seed=10)
    ids = bank.item_ids
    tags = {iid: (["a", "b"] if k < 4 else []) + (["sql"] if k % 2 else [])
            for k, iid in enumerate(ids)}
    pool = engine.ItemPool(bank, tags=tags)
    bp = engine.Blueprint(skills=skills, max_items=8, selector=selector)
    with pytest.raises(ConfigurationError, match=message):
        engine.make_engine(pool, bp)


def test_settings_are_validated_and_plain_engine_refuses(make_bank):
    with pytest.raises(ConfigurationError, match="tag_counts"):
        ShadowTest(tag_counts={"x": [3, 1]})
    with pytest.raises(ConfigurationError, match="max_exposure"):
        ShadowTest(max_exposure=0.0)
    bank = make_bank(1, 20, seed=1)
    ctx = engine.make_engine(bank, engine.Blueprint(max_items=5)).selection_context
    with pytest.raises(EngineError, match="no per-item criterion"):
        ShadowTest().criterion(ctx(engine.make_engine(bank).new_work(
            np.zeros(1, dtype=np.uint64)), slice(None), 0))
    with pytest.raises(ConfigurationError, match="classification"):
        engine.make_engine(bank, engine.Blueprint(selector=ShadowTest(),
                                                  classification=engine.Classification()))
    with pytest.raises(ConfigurationError, match="fixed-length"):
        engine.make_engine(bank, engine.Blueprint(selector=ShadowTest(), stopping=(
            engine.CompositeSE(0.3),)))
