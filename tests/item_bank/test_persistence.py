"""Migrations, database-enforced integrity, the response log, publishing and loading."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from irt import ItemParams
from item_bank import db
from item_bank import repository as repo
from item_bank.content import ParameterRecord
from item_bank.models import (
    AppendOnlyError,
    Base,
    ItemParameterVersion,
    Response,
)
from tests.item_bank.helpers import load_mini, org_with_assessment, started_session


def test_migrations_from_empty_match_models(fresh_engine):
    engine = fresh_engine(migrate=False)
    with pytest.raises(db.SchemaError, match="run `proficio db upgrade`"):
        db.check_schema(engine)
    assert db.upgrade(engine) == db.head_revision()
    db.check_schema(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_postgresql_compresses_the_engine_state_with_lz4_where_it_can(fresh_engine):
    """Migration 0014: every answer rewrites the session's state; on PostgreSQL 14+ built with
    lz4 the column is compressed with it (pglz otherwise, and nothing changes elsewhere)."""
    engine = fresh_engine(migrate=True)
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage setting")
    with engine.connect() as conn:
        method = conn.execute(text(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = "
            "'test_sessions'::regclass AND attname = 'engine_state'")).scalar_one()
        try:
            with conn.begin_nested():
                conn.execute(text("CREATE TEMP TABLE lz4_probe (x text COMPRESSION lz4)"))
            supported = True
        except DBAPIError:
            supported = False
    assert method == ("l" if supported else "")


def test_schema_behind_is_refused_with_the_fix(fresh_engine):
    engine = fresh_engine(migrate=False)
    db.upgrade(engine, "0001")
    if db.head_revision() != "0001":
        with pytest.raises(db.SchemaError,
                           match=r"at schema revision 0001 .* `proficio db upgrade`"):
            db.check_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(db.SchemaError, match="does not know"):
        db.check_schema(engine)


def test_database_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PROFICIO_INSTANCE", str(tmp_path / "inst"))
    assert db.database_url() == f"sqlite:///{tmp_path / 'inst' / 'proficio.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:5432/x")
    assert db.database_url() == "postgresql+psycopg://u@h:5432/x"


def test_sqlite_pragmas(tmp_path):
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def _session_with_answers(s):
    load_mini(s)
    _, assessment = org_with_assessment(s)
    sid = started_session(s, assessment)
    repo.record_response(s, sid, "DB-001", 1, "b", 1, latency_ms=1200)
    repo.record_response(s, sid, "DB-002", 2, "a", 0)
    return sid


def test_duplicate_response_rejected_by_database(db_session):
    sid = _session_with_answers(db_session)
    item_id = db_session.scalar(select(Response.item_id).where(Response.position == 1))
    for position, item in ((3, item_id), (2, None)):
        nested = db_session.begin_nested()
        # raw ORM insert: no code path checks duplicates, only the UNIQUE constraints
        row = Response(session_id=sid, item_id=item or item_id + 3, position=position,
                       raw_answer="a", score=0)
        db_session.add(row)
        with pytest.raises(IntegrityError):
            db_session.flush()
        nested.rollback()
    assert len(repo.session_responses(db_session, sid)) == 2


def test_foreign_keys_enforced(db_session):
    load_mini(db_session)
    nested = db_session.begin_nested()
    db_session.add(Response(session_id=987654, item_id=1, position=1, raw_answer="a", score=0))
    with pytest.raises(IntegrityError):
        db_session.flush()
    nested.rollback()


def test_responses_are_append_only(db_session):
    sid = _session_with_answers(db_session)
    row = repo.session_responses(db_session, sid)[0]
    row.score = 0
    with pytest.raises(AppendOnlyError):
        db_session.flush()
    db_session.rollback()


def test_only_one_current_version_per_item(db_session):
    load_mini(db_session)
    current = db_session.scalar(select(ItemParameterVersion).limit(1))
    nested = db_session.begin_nested()
    db_session.add(ItemParameterVersion(item_id=current.item_id, calibration_run_id=(
        current.calibration_run_id), model="2pl", a=1.0, b=0.0, c=0.0, d=1.0, is_current=True))
    with pytest.raises(IntegrityError):
        db_session.flush()
    nested.rollback()


def test_response_export_equals_stored(db_session):
    load_mini(db_session)
    _, assessment = org_with_assessment(db_session)
    rng = np.random.default_rng(3)
    items = ["DB-001", "DB-002", "DB-003", "DB-004", "GIT-001", "GIT-002", "GIT-003"]
    stored = {}
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for k in range(5):
        sid = started_session(db_session, assessment)
        chosen = rng.permutation(items)[: 3 + k % 3]
        for pos, iid in enumerate(chosen, start=1):
            score = int(rng.integers(0, 2))
            repo.record_response(db_session, sid, str(iid), pos, "a", score,
                                 answered_at=t0 + dt.timedelta(days=k, minutes=pos))
            stored[(sid, str(iid))] = score
    out = repo.export_responses(db_session)
    got = {(out.session_ids[j], out.item_ids[out.data.item[j]]): int(out.data.response[j])
           for j in range(out.data.n_responses)}
    assert got == stored
    assert out.data.n_persons == 5 and out.n_dropped_repeats == 0
    # the same instant written in another time zone selects the same rows
    since = (t0 + dt.timedelta(days=2)).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    only_db = repo.export_responses(db_session, skills=["databases"], since=since)
    assert set(only_db.skills) == {"databases"}
    assert all(t >= t0 + dt.timedelta(days=2) for t in only_db.answered_at)
    expect = {k: v for k, v in stored.items() if k[1].startswith("DB-")
              and k[0] >= min(out.session_ids) + 2}
    assert only_db.data.n_responses == len(expect)
    assert repo.export_responses(db_session, session_statuses=["completed"]).data.n_responses == 0
    first = min(out.session_ids)
    from item_bank.models import CandidateSession

    repo.finish_session(db_session, db_session.get(CandidateSession, first))
    done = repo.export_responses(db_session, session_statuses=["completed"])
    assert set(done.session_ids) == {first}
    assert done.data.n_responses == sum(1 for k in stored if k[0] == first)


def test_publish_keeps_history_and_sessions_keep_their_version(db_session):
    sid = _session_with_answers(db_session)
    old = repo.load_bank(db_session)
    first = repo.session_responses(db_session, sid)[0]
    old_version = first.parameter_version_id
    new = [ParameterRecord(ItemParams(iid, "2pl", 2.0, 0.5, skill=old.meta(iid).skill),
                           se_a=0.1, se_b=0.1, n_responses=1000)
           for iid in old.bank.item_ids]
    run_id = repo.publish_parameters(db_session, new, repo.CalibrationRunSpec(
        model="2pl", log_likelihood=-1234.5, converged=True, n_iterations=12))
    loaded = repo.load_bank(db_session)
    np.testing.assert_allclose(loaded.bank.a, 2.0)
    assert not loaded.provisional
    hist = repo.parameter_history(db_session, "DB-001")
    assert [v.is_current for v in hist] == [False, True]
    assert hist[-1].calibration_run_id == run_id
    # the stored answer still points at the version that scored it
    assert first.parameter_version_id == old_version == hist[0].id
    with pytest.raises(ValueError, match="item 'NOPE': not in the bank"):
        repo.publish_parameters(db_session, [ParameterRecord(ItemParams("NOPE"))],
                                repo.CalibrationRunSpec(model="2pl"))
    # a negative slope (calibration allows it, to show a miskeyed item) is refused by name,
    # and nothing is written
    reversed_ = [ParameterRecord(ItemParams("DB-001", "2pl", -0.8, 0.5))]
    with pytest.raises(ValueError, match=r"item 'DB-001': field 'a' = -0\.8 is not positive"):
        repo.publish_parameters(db_session, reversed_, repo.CalibrationRunSpec(model="2pl"))
    assert repo.parameter_history(db_session, "DB-001")[-1].calibration_run_id == run_id


def test_load_bank_metadata_and_exposure(db_session):
    sid = _session_with_answers(db_session)
    loaded = repo.load_bank(db_session, skills=["databases"])
    assert loaded.bank.item_ids == ("DB-001", "DB-002", "DB-003", "DB-004")
    assert set(loaded.bank.skills) == {"databases"}
    assert loaded.meta("DB-002").enemies == ("DB-003",)
    assert loaded.enemy_groups == (("DB-002", "DB-003"),)
    assert loaded.meta("DB-003").tags == ("transactions",)
    assert loaded.bank.models[2] == "3pl"
    exp = repo.exposure_counts(db_session, loaded.bank.item_ids)
    assert exp.counts.tolist() == [1, 1, 0, 0] and exp.n_sessions == 1
    assert sid
    with pytest.raises(ValueError, match="unknown skill 'astro'"):
        repo.load_bank(db_session, skills=["astro"])


def test_invitation_tokens_are_hashed_and_single_use(db_session):
    load_mini(db_session)
    _, assessment = org_with_assessment(db_session)
    issued = repo.create_invitations(db_session, assessment, 3)
    assert len({i.token for i in issued}) == 3
    assert all(len(i.token) >= 32 for i in issued)
    inv = repo.find_invitation(db_session, issued[0].token)
    assert inv is not None and inv.token_hash != issued[0].token
    assert issued[0].token not in inv.token_hash
    assert repo.find_invitation(db_session, "guess") is None
    repo.start_session(db_session, inv)
    with pytest.raises(ValueError, match="invitation is started"):
        repo.start_session(db_session, inv)
    expired = repo.find_invitation(db_session, issued[1].token)
    expired.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with pytest.raises(ValueError, match="expired"):
        repo.start_session(db_session, expired)


def test_engine_state_optimistic_save(db_session):
    load_mini(db_session)
    _, assessment = org_with_assessment(db_session)
    sid = started_session(db_session, assessment)
    from item_bank.models import CandidateSession

    row = db_session.get(CandidateSession, sid)
    v = repo.save_engine_state(db_session, row, {"theta": 0.5}, row.state_version)
    assert row.engine_state == {"theta": 0.5} and v == 1
    with pytest.raises(ValueError, match="updated concurrently"):
        repo.save_engine_state(db_session, row, {"theta": 0.9}, 0)


def test_staff_passwords(db_session):
    org = repo.create_organisation(db_session, "o", "O")
    user = repo.create_staff_user(db_session, org, "Ann@Example.com", "recruiter", "s3cret-pass")
    assert user.password_hash.startswith("$argon2id$")
    assert repo.authenticate(db_session, "ann@example.com", "s3cret-pass").id == user.id
    assert repo.authenticate(db_session, "ann@example.com", "wrong-pass") is None
    with pytest.raises(ValueError, match="unknown role"):
        repo.create_staff_user(db_session, org, "b@example.com", "owner", "s3cret-pass")


def test_concurrent_writers_lose_nothing(fresh_engine):
    engine = fresh_engine()
    with db.transaction(engine) as s:
        load_mini(s)
        _, assessment = org_with_assessment(s)
        sessions = [started_session(s, assessment) for _ in range(4)]
    items = ["DB-001", "DB-002", "DB-003", "DB-004", "GIT-001", "GIT-002", "GIT-003"]
    errors: list[BaseException] = []

    def answer_all(sid: int) -> None:
        try:
            for pos, iid in enumerate(items, start=1):
                with db.transaction(engine) as s:  # one commit per answer, as the web tier does
                    repo.record_response(s, sid, iid, pos, "a", pos % 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=answer_all, args=(sid,)) for sid in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.transaction(engine) as s:
        for sid in sessions:
            rows = repo.session_responses(s, sid)
            assert [r.position for r in rows] == list(range(1, 8))
        assert repo.export_responses(s).data.n_responses == 4 * 7


def test_load_item_pool_for_the_engine(db_session):
    from engine import ItemPool
    from item_bank.pool import load_item_pool

    _session_with_answers(db_session)
    pool = load_item_pool(db_session, skills=["databases"])
    assert isinstance(pool, ItemPool)
    assert pool.bank.item_ids == ("DB-001", "DB-002", "DB-003", "DB-004")
    assert pool.enemy_groups == (("DB-002", "DB-003"),)
    assert pool.exposure_rates == {"DB-001": 1.0, "DB-002": 1.0, "DB-003": 0.0, "DB-004": 0.0}
    assert pool.tags["DB-004"] == ("indexes",)


def test_upgrade_keeps_data_from_the_first_revision(fresh_engine):
    """Upgrading a database that already holds sessions and answers loses nothing (SQLite
    rebuilds tables in batch mode; foreign keys must survive the copy)."""
    engine = fresh_engine(migrate=False)
    db.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO skills (id, slug, name, description) VALUES (1, 'databases', 'DB', '')")
        conn.exec_driver_sql(
            "INSERT INTO items (id, external_id, skill_id, stem, options, key, explanation, "
            "model, status, tags, created_at, updated_at) VALUES (1, 'DB-1', 1, 'Q', "
            """'[{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]', """
            "'a', '', '2pl', 'operational', '[]', '2026-01-01', '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO organisations (id, slug, name, created_at) "
                             "VALUES (1, 'o', 'O', '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO staff_users (id, organisation_id, email, name, role, "
                             "password_hash, active, created_at) VALUES (1, 1, 'a@b.c', '', "
                             "'recruiter', 'x', true, '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO assessments (id, organisation_id, slug, name, "
                             "blueprint, created_at) VALUES (1, 1, 'a', 'A', '{}', '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO candidates (id, public_id, organisation_id, created_at)"
                             " VALUES (1, 'c1', 1, '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO invitations (id, assessment_id, candidate_id, "
                             "token_hash, status, created_at, expires_at) VALUES (1, 1, 1, 'h', "
                             "'started', '2026-01-01', '2027-01-01')")
        conn.exec_driver_sql("INSERT INTO test_sessions (id, invitation_id, candidate_id, "
                             "assessment_id, status, started_at, state_version, blueprint) "
                             "VALUES (1, 1, 1, 1, 'in_progress', '2026-01-01', 0, '{}')")
        conn.exec_driver_sql("INSERT INTO responses (id, session_id, item_id, position, "
                             "raw_answer, score, answered_at) VALUES (1, 1, 1, 1, 'a', 1, "
                             "'2026-01-01')")
    db.upgrade(engine)
    db.check_schema(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM responses").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM test_sessions").scalar() == 1
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_staff_and_assessment_input_errors(db_session):
    load_mini(db_session)
    org, _ = org_with_assessment(db_session)
    with pytest.raises(ValueError, match=f"organisation {org.slug!r} already exists"):
        repo.create_organisation(db_session, org.slug, "Again")
    with pytest.raises(ValueError, match="field 'slug'"):
        repo.create_organisation(db_session, "Bad Slug", "X")
    repo.create_staff_user(db_session, org, "x@example.com", "admin", "long-enough-pw")
    with pytest.raises(ValueError, match="already has an account"):
        repo.create_staff_user(db_session, org, " X@Example.com", "recruiter", "long-enough-pw")
    with pytest.raises(ValueError, match="at least 8 characters"):
        repo.create_staff_user(db_session, org, "y@example.com", "admin", "short")
    with pytest.raises(ValueError, match="already has an assessment 'backend'"):
        repo.create_assessment(db_session, org, "backend", "B", {"skills": ["databases"]})
    with pytest.raises(ValueError, match="unknown skill 'astro'"):
        repo.create_assessment(db_session, org, "new", "N", {"skills": [{"skill": "astro"}]})
