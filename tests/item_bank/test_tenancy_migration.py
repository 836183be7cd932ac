"""Migration 0004 (owned banks) from a database made by the previous version (revision 0003),
filled the way that version's code fills it: the shipped bank imported with its provisional
parameters, a recalibration published, two organisations with assessments, sessions, answers,
results and calibration jobs. Nothing is lost, and everything lands in one bank owned by the
oldest organisation, published as a library because the second organisation's assessment
draws from it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from item_bank import db
from item_bank import repository as repo
from item_bank.shipped import read_shipped

NOW = "2026-11-30 10:00:00+00:00"
COUNTED = ("skills", "items", "item_enemies", "item_parameter_versions", "calibration_runs",
           "calibration_jobs", "organisations", "staff_users", "assessments", "candidates",
           "invitations", "test_sessions", "responses", "skill_results")


def _fill_like_0003(engine: Engine, organisations: int = 2) -> None:
    """Rows as the 0003 code wrote them (its schema: no bank columns)."""
    doc = read_shipped()
    with engine.begin() as c:
        x = c.execute
        for k, s in enumerate(doc.skills, start=1):
            x(text("INSERT INTO skills (id, slug, name, description) VALUES (:i, :s, :n, :d)"),
              {"i": k, "s": s.slug, "n": s.name, "d": s.description})
        skill_pk = {s.slug: k for k, s in enumerate(doc.skills, start=1)}
        x(text("INSERT INTO calibration_runs (id, created_at, model, method, settings, "
               "response_filter, provisional, notes, published_at) VALUES (1, :t, '2pl', "
               "'import', '{}', '{}', true, 'imported', :t)"), {"t": NOW})
        x(text("INSERT INTO calibration_runs (id, created_at, model, method, settings, "
               "response_filter, provisional, notes, published_at) VALUES (2, :t, '2pl', "
               "'mml-em/anchored', '{}', '{}', false, 'job 1', :t)"), {"t": NOW})
        item_pk = {}
        for k, it in enumerate(doc.items, start=1):
            item_pk[it.external_id] = k
            x(text("INSERT INTO items (id, external_id, skill_id, stem, options, key, "
                   "explanation, model, status, difficulty_level, tags, created_at, "
                   "updated_at) VALUES (:i, :e, :s, :stem, :o, :k, :x, '2pl', :st, :d, '[]', "
                   ":t, :t)"),
              {"i": k, "e": it.external_id, "s": skill_pk[it.skill], "stem": it.stem,
               "o": json.dumps([{"id": o.id, "text": o.text} for o in it.options]),
               "k": it.key, "x": it.explanation, "st": it.status, "d": it.difficulty,
               "t": NOW})
        params = {r.params.item_id: r for r in doc.parameters}
        v = 0
        for iid, pk in item_pk.items():
            p = params[iid].params
            v += 1
            x(text("INSERT INTO item_parameter_versions (id, item_id, calibration_run_id, model,"
                   " a, b, c, d, thresholds, se_thresholds, provisional, is_current, created_at)"
                   " VALUES (:v, :i, 1, '2pl', :a, :b, 0, 1, '[]', '[]', true, :cur, :t)"),
              {"v": v, "i": pk, "a": p.a, "b": p.b, "cur": pk != 1, "t": NOW})
        v += 1  # item 1 was recalibrated by job 1: its second version is current
        x(text("INSERT INTO item_parameter_versions (id, item_id, calibration_run_id, model, a, "
               "b, c, d, thresholds, se_thresholds, provisional, is_current, created_at) VALUES "
               "(:v, 1, 2, '2pl', 1.5, 0.25, 0, 1, '[]', '[]', false, true, :t)"),
          {"v": v, "t": NOW})
        x(text("INSERT INTO item_enemies (item_id, enemy_id) VALUES (1, 2)"))
        blueprint = json.dumps({"skills": [s.slug for s in doc.skills]})
        for o in range(1, organisations + 1):
            x(text("INSERT INTO organisations (id, slug, name, created_at) VALUES "
                   "(:o, :s, :n, :t)"), {"o": o, "s": f"org{o}", "n": f"Org {o}", "t": NOW})
            x(text("INSERT INTO staff_users (id, organisation_id, email, name, role, "
                   "password_hash, active, login_epoch, created_at) VALUES (:o, :o, :e, '', "
                   "'psychometrician', 'x', true, 0, :t)"),
              {"o": o, "e": f"p{o}@example.com", "t": NOW})
            x(text("INSERT INTO assessments (id, organisation_id, slug, name, blueprint, "
                   "created_at) VALUES (:o, :o, 'a', 'A', :b, :t)"),
              {"o": o, "b": blueprint, "t": NOW})
            x(text("INSERT INTO candidates (id, public_id, organisation_id, created_at) "
                   "VALUES (:o, :p, :o, :t)"), {"o": o, "p": f"cand{o}", "t": NOW})
            x(text("INSERT INTO invitations (id, assessment_id, candidate_id, token_hash, "
                   "status, created_at, expires_at) VALUES (:o, :o, :o, :h, 'completed', :t, "
                   ":t)"), {"o": o, "h": f"h{o}", "t": NOW})
            x(text("INSERT INTO test_sessions (id, invitation_id, candidate_id, assessment_id, "
                   "status, started_at, state_version, blueprint, engine_state) VALUES "
                   "(:o, :o, :o, :o, 'completed', :t, 2, '{}', '{}')"), {"o": o, "t": NOW})
            for pos, item in enumerate((1, 3), start=1):
                x(text("INSERT INTO responses (session_id, item_id, parameter_version_id, "
                       "position, raw_answer, score, answered_at) VALUES (:o, :i, :i, :p, "
                       "'a', 1, :t)"), {"o": o, "i": item, "p": pos, "t": NOW})
            x(text("INSERT INTO skill_results (session_id, skill_id, theta, se, n_items, "
                   "stop_reason, created_at) VALUES (:o, 1, 0.5, 0.4, 2, 'se', :t)"),
              {"o": o, "t": NOW})
            x(text("INSERT INTO calibration_jobs (id, created_at, created_by_id, status, "
                   "progress, settings, upload) VALUES (:o, :t, :o, 'published', 1.0, '{}', "
                   "NULL)"), {"o": o, "t": NOW})
        if engine.dialect.name == "postgresql":  # explicit ids above: move the sequences on
            for t in COUNTED:
                if t != "item_enemies":
                    x(text(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                           f"COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"))


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in COUNTED}


def _content(engine: Engine) -> list[tuple]:
    with engine.connect() as c:
        return list(c.execute(text(
            "SELECT i.external_id, s.slug, i.stem, i.key, i.status, v.a, v.b, v.is_current "
            "FROM items i JOIN skills s ON s.id = i.skill_id JOIN item_parameter_versions v "
            "ON v.item_id = i.id ORDER BY v.id")))


def test_upgrade_from_0003_moves_the_bank_into_the_oldest_organisation(fresh_engine):
    engine = fresh_engine(migrate=False)
    db.upgrade(engine, "0003")
    _fill_like_0003(engine)
    counts, content = _counts(engine), _content(engine)
    assert db.upgrade(engine) == db.head_revision()
    db.check_schema(engine)
    assert _counts(engine) == counts  # nothing lost
    assert _content(engine) == content
    with engine.connect() as c:
        banks = list(c.execute(text("SELECT id, organisation_id, slug, library FROM item_banks")))
        assert [(o, s, bool(lib)) for _, o, s, lib in banks] == [(1, "default", True)]
        bank_id = banks[0][0]
        for table in ("skills", "items", "calibration_runs", "calibration_jobs", "assessments"):
            assert c.execute(text(f"SELECT COUNT(*) FROM {table} WHERE bank_id <> :b"),
                             {"b": bank_id}).scalar_one() == 0, table
        assert c.execute(text("SELECT COUNT(*) FROM response_pooling_consents")).scalar_one() \
            == 0  # no consent is invented
        if engine.dialect.name == "sqlite":
            assert c.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            ddl = c.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'items'").scalar()
            assert "ck_items_status" in ddl and "ck_items_difficulty_level" in ddl
    with db.transaction(engine) as s:
        bank = repo.sole_bank(s)
        loaded = repo.load_bank(s, bank_id=bank.id)
        assert len(loaded.bank) == len(read_shipped().items)
        assert loaded.meta(content[-1][0]).parameter_version_id == len(content)  # recalibrated
        org1_only = repo.export_responses(s, bank_id=bank.id,
                                          organisation_ids=repo.pooled_organisations(s, bank))
        assert org1_only.person_ids == ("cand1",)  # org 2 has not consented
        assert repo.export_responses(s, bank_id=bank.id).data.n_responses == 4
        # the per-bank uniqueness replaced the global one: another bank may reuse the ids
        org2 = s.execute(text("SELECT id FROM organisations WHERE slug = 'org2'")).scalar_one()
        from item_bank.models import Organisation

        copy = repo.copy_bank(s, bank, s.get(Organisation, org2), "mine", "Mine")
        assert len(repo.load_bank(s, bank_id=copy.id).bank) == len(loaded.bank)


def test_upgrade_of_a_single_organisation_keeps_its_bank_private(fresh_engine):
    engine = fresh_engine(migrate=False)
    db.upgrade(engine, "0003")
    _fill_like_0003(engine, organisations=1)
    db.upgrade(engine)
    with engine.connect() as c:
        assert [tuple(r) for r in c.execute(text(
            "SELECT organisation_id, library FROM item_banks"))] in ([(1, False)], [(1, 0)])


def test_upgrade_of_an_empty_database_creates_no_bank(fresh_engine):
    engine = fresh_engine(migrate=False)
    db.upgrade(engine, "0003")
    db.upgrade(engine)
    with engine.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM item_banks")).scalar_one() == 0


@pytest.mark.parametrize("organisations", [0])
def test_upgrade_of_a_bank_without_organisations_creates_its_owner(fresh_engine, organisations):
    """`proficio bank import` worked before any organisation existed."""
    engine = fresh_engine(migrate=False)
    db.upgrade(engine, "0003")
    _fill_like_0003(engine, organisations=organisations)
    db.upgrade(engine)
    with engine.connect() as c:
        owner = c.execute(text("SELECT o.slug FROM item_banks b JOIN organisations o "
                               "ON o.id = b.organisation_id")).scalar_one()
        assert owner == "proficio"
        assert c.execute(text("SELECT COUNT(*) FROM items")).scalar_one() == \
            len(read_shipped().items)
