"""Owned banks at the repository level: one organisation's bank is invisible to another's
assessments until published as a library; copies are independent; the same external ids live
in two banks without mixing; answers are recorded against the session's own bank."""

from __future__ import annotations

import pytest

from item_bank import repository as repo
from item_bank.models import Item, Organisation
from item_bank.transfer import read_bank_file
from tests.item_bank.helpers import MINI_BANK, MINI_PARAMS, load_mini, started_session


def _two_organisations(db_session):
    load_mini(db_session)
    bank = repo.sole_bank(db_session)
    owner = db_session.get(Organisation, bank.organisation_id)
    other = repo.create_organisation(db_session, "other", "Other")
    return bank, owner, other


def test_another_organisations_private_bank_cannot_be_used_or_copied(db_session):
    bank, _owner, other = _two_organisations(db_session)
    with pytest.raises(ValueError, match="another organisation and is not a library"):
        repo.create_assessment(db_session, other, "x", "X", {"skills": ["databases"]},
                               bank=bank)
    with pytest.raises(ValueError, match="only a library"):
        repo.copy_bank(db_session, bank, other, "mine", "Mine")
    repo.set_library(db_session, bank, True)
    assessment = repo.create_assessment(db_session, other, "x", "X",
                                        {"skills": ["databases"]}, bank=bank)
    assert assessment.bank_id == bank.id
    with pytest.raises(ValueError, match="cannot be withdrawn"):
        repo.set_library(db_session, bank, False)


def test_a_copy_is_independent_and_ids_repeat_across_banks(db_session):
    bank, _owner, other = _two_organisations(db_session)
    repo.set_library(db_session, bank, True)
    copy = repo.copy_bank(db_session, bank, other, "mine", "Mine")
    original = repo.load_bank(db_session, bank_id=bank.id)
    copied = repo.load_bank(db_session, bank_id=copy.id)
    assert copied.bank.item_ids == original.bank.item_ids
    assert {m.parameter_version_id for m in copied.items}.isdisjoint(
        {m.parameter_version_id for m in original.items})
    # retiring in the copy leaves the library alone, and re-importing by id stays in one bank
    item = db_session.query(Item).filter_by(bank_id=copy.id, external_id="DB-001").one()
    item.status = "retired"
    db_session.flush()
    assert "DB-001" in repo.load_bank(db_session, bank_id=bank.id).bank.item_ids
    assert "DB-001" not in repo.load_bank(db_session, bank_id=copy.id).bank.item_ids
    with pytest.raises(ValueError, match="already has this external id"):
        repo.import_document(db_session, read_bank_file(MINI_BANK), bank_id=copy.id)
    report = repo.import_document(db_session, read_bank_file(MINI_PARAMS), bank_id=copy.id)
    assert report.parameter_versions == 7
    assert repo.parameter_history(db_session, "DB-002", bank.id)[-1].is_current
    assert len(repo.parameter_history(db_session, "DB-002", copy.id)) == 2


def test_answers_and_results_are_recorded_against_the_sessions_bank(db_session):
    bank, owner, other = _two_organisations(db_session)
    repo.set_library(db_session, bank, True)
    copy = repo.copy_bank(db_session, bank, other, "mine", "Mine")
    on_copy = repo.create_assessment(db_session, other, "own", "Own",
                                     {"skills": ["databases"]}, bank=copy)
    on_library = repo.create_assessment(db_session, other, "lib", "Lib",
                                        {"skills": ["databases"]}, bank=bank)
    s1, s2 = started_session(db_session, on_copy), started_session(db_session, on_library)
    r1 = repo.record_response(db_session, s1, "DB-001", 1, "b", 1)
    r2 = repo.record_response(db_session, s2, "DB-001", 1, "b", 1)
    assert db_session.get(Item, r1.item_id).bank_id == copy.id
    assert db_session.get(Item, r2.item_id).bank_id == bank.id
    res = repo.record_skill_result(db_session, s1, "databases", 0.1, 0.3, 1, "se")
    assert res.skill_id != repo.record_skill_result(db_session, s2, "databases", 0.1, 0.3, 1,
                                                    "se").skill_id
    # the library's log: the other organisation's answer is there, but pooled only by consent
    assert repo.export_responses(db_session, bank_id=bank.id).data.n_responses == 1
    pooled = repo.pooled_organisations(db_session, bank)
    assert pooled == [owner.id]
    assert repo.export_responses(db_session, bank_id=bank.id,
                                 organisation_ids=pooled).data.n_responses == 0
    repo.grant_pooling_consent(db_session, other.id, bank)
    assert repo.pooled_organisations(db_session, bank) == [owner.id, other.id]
    with pytest.raises(ValueError, match="own responses"):
        repo.grant_pooling_consent(db_session, owner.id, bank)
    assert repo.revoke_pooling_consent(db_session, other.id, bank.id)
    assert not repo.revoke_pooling_consent(db_session, other.id, bank.id)
    assert repo.pooled_organisations(db_session, bank) == [owner.id]


def test_several_banks_need_a_name(db_session):
    bank, owner, other = _two_organisations(db_session)
    repo.create_bank(db_session, other, "b", "B")
    with pytest.raises(ValueError, match="several item banks"):
        repo.load_bank(db_session)
    with pytest.raises(ValueError, match=r"has no banks"):
        repo.find_bank(db_session, repo.create_organisation(db_session, "z", "Z"))
    assert repo.find_bank(db_session, owner).id == bank.id
    with pytest.raises(ValueError, match="already has a bank"):
        repo.create_bank(db_session, owner, bank.slug, "Again")
