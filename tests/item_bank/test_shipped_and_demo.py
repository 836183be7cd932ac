"""The shipped Back-End Engineer bank, its provisional parameters, and the demo database."""

from __future__ import annotations

import numpy as np
import pytest

from irt.io import read_items_csv
from item_bank import db
from item_bank import repository as repo
from item_bank.demo import build_demo_database
from item_bank.models import Invitation, StaffUser
from item_bank.security import hash_token
from item_bank.shipped import (
    PROVISIONAL_PARAMETERS,
    import_shipped,
    quality_problems,
    read_shipped,
)


@pytest.fixture(scope="module")
def shipped():
    return read_shipped()


def test_shipped_bank_is_valid_and_complete(shipped):
    assert quality_problems(shipped) == []
    assert len(shipped.skills) >= 8 and len(shipped.items) >= 200
    for skill in shipped.skills:
        levels = [it.difficulty for it in shipped.items if it.skill == skill.slug]
        assert len(levels) >= 25
        assert min(levels) <= 2 and max(levels) >= 4


def test_every_shipped_item_has_provisional_parameters(shipped):
    table = read_items_csv(PROVISIONAL_PARAMETERS)
    assert set(table.bank.item_ids) == {it.external_id for it in shipped.items}
    assert set(table.extra["provisional"]) == {"true"}
    assert all(r.provisional for r in shipped.parameters)
    # the CSV was made from the current content (else re-run scripts/provisional_parameters.py)
    authored = {it.external_id: it.difficulty for it in shipped.items}
    level = np.array([int(v) for v in table.extra["level"]])
    assert [authored[i] for i in table.bank.item_ids] == level.tolist()
    # authored level → b: the calibrated b rise with the level in every skill
    for skill in {s.slug for s in shipped.skills}:
        idx = table.bank.skill_indices(skill)
        assert np.corrcoef(level[idx], table.bank.b[idx])[0, 1] > 0.8


def test_quality_problems_are_reported(shipped):
    from dataclasses import replace

    from item_bank.content import BankDocument

    items = list(shipped.items)
    items[0] = replace(items[0], explanation="", options=items[0].options[:3])
    cloud = [it for it in items if it.skill == "cloud"]
    kept = tuple(it for it in items if it.skill != "cloud") + tuple(cloud[:5])
    problems = quality_problems(BankDocument("x", shipped.skills, kept))
    text = "\n".join(problems)
    assert "no explanation" in text and "3 options" in text and "items, at least 25" in text


def test_import_shipped_loads_for_the_engine(db_session, shipped):
    rep = import_shipped(db_session)
    assert rep.items_created == len(shipped.items)
    loaded = repo.load_bank(db_session)
    assert len(loaded.bank) == len(shipped.items) and loaded.provisional
    # shipped items are scored from the start; their parameters are flagged provisional
    assert {m.status for m in loaded.items} == {"operational"}
    assert all(m.provisional for m in loaded.items)
    assert set(loaded.bank.skills) == {s.slug for s in shipped.skills}


def test_build_demo_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    info = build_demo_database(url, n_invitations=3)
    again = build_demo_database(url, n_invitations=2)  # rebuilt fresh, not appended
    assert len(again.invitation_tokens) == 2
    assert info.credentials("recruiter").password != again.credentials("recruiter").password
    engine = db.create_db_engine(url)
    try:
        db.check_schema(engine)
        with db.transaction(engine, write=False) as s:
            assert s.query(Invitation).count() == 2
            for cred in again.staff:
                user = repo.authenticate(s, cred.email, cred.password)
                assert user is not None and user.role == cred.role
            assert s.query(StaffUser).count() == 2
            tok = again.invitation_tokens[0]
            inv = repo.find_invitation(s, tok)
            assert inv.token_hash == hash_token(tok) and inv.status == "pending"
            assessment = repo.find_assessment(s, again.assessment_slug)
            skills = [sk["skill"] for sk in assessment.blueprint["skills"]]
            assert len(skills) == 8
            from engine import Blueprint

            assert [s.skill for s in Blueprint.from_dict(assessment.blueprint).skills] == skills
            assert again.n_items == len(repo.load_bank(s).bank) and again.provisional
    finally:
        engine.dispose()


def test_demo_refuses_a_database_that_has_a_schema(fresh_engine, db_backend):
    if db_backend != "postgresql":
        pytest.skip("SQLite demo files are deleted and rebuilt instead")
    with pytest.raises(ValueError, match="already has a Proficio schema"):
        build_demo_database(fresh_engine())
