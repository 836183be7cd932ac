"""Durability of the bank: ``proficio db export`` / ``proficio db import`` round-trip a populated
database (SQLite and PostgreSQL, and across them), and a recalibration publish that fails half-way
leaves the previous parameter version current."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from item_bank.db import create_db_engine, normalize_url, transaction
from item_bank.models import CalibrationJob, StaffUser
from tests.reliability.conftest import WEB_BACKENDS, Site, csrf_of, login, new_site
from web.cli import main as proficio

_PG_URL = os.environ.get("DATABASE_URL", "")


@contextmanager
def empty_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a database without a schema (SQLite file, or a new PostgreSQL schema)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'restored-{uuid.uuid4().hex[:6]}.sqlite3'}"
        return
    base = normalize_url(_PG_URL)
    schema = f"proficio_restore_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def _answer_all(c, started: dict, stop_after: int | None = None) -> dict:  # type: ignore[no-untyped-def]
    state, n = started, 0
    while state["status"] == "in_progress" and (stop_after is None or n < stop_after):
        it = state["pending_item"]
        state = c.post(f"/api/v1/sessions/{started['session_id']}/responses",
                       headers={"Authorization": f"Bearer {started['token']}"},
                       json={"item_id": it["item_id"], "answer": it["options"][n % 2]["id"]}
                       ).json
        n += 1
    return state


def _tables(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)["tables"]


@pytest.mark.parametrize("source", WEB_BACKENDS)
def test_export_import_round_trips_a_populated_database(source: str, tmp_path: Path):
    with new_site(source, tmp_path) as site:
        app = site.app()
        c = app.test_client()
        done_token, live_token = site.invite(2, candidate_names=["Done Dana", "Live Lee"])
        done = c.post("/api/v1/sessions", json={"invitation": done_token}).json
        _answer_all(c, done)
        live = c.post("/api/v1/sessions", json={"invitation": live_token}).json
        live_state = _answer_all(c, live, stop_after=3)
        rec = app.test_client()
        cred = site.info.credentials("recruiter")
        login(rec, cred.email, cred.password)
        report = rec.get(f"/api/v1/reports/{done['session_id']}").json
        site.close_apps()

        dump = tmp_path / "backup.json.gz"
        assert proficio(["db", "export", "--database-url", site.url, "--out", str(dump)]) == 0
        assert oct(dump.stat().st_mode & 0o777) == "0o600"
        original = _tables(dump)
        assert len(original["responses"]["rows"]) >= 4
        assert original["test_sessions"]["rows"] and original["skill_results"]["rows"]

        for target in WEB_BACKENDS:  # restore into each backend, from each backend
            with empty_database(target, tmp_path) as url:
                assert proficio(["db", "import", "--database-url", url, str(dump)]) == 0
                again = tmp_path / f"again-{target}.json.gz"
                assert proficio(["db", "export", "--database-url", url,
                                 "--out", str(again)]) == 0
                assert _tables(again) == original, f"{source} -> {target}"
                # a second import into the now populated database is refused, unchanged
                assert proficio(["db", "import", "--database-url", url, str(dump)]) == 2
                restored = Site(url, site.info, site.other_org_password)
                _check_restored_site(restored, done, live, live_state, report)


def _check_restored_site(site: Site, done: dict, live: dict, live_state: dict,
                         report: dict) -> None:
    """The restored database serves as the original did: same report, the live candidate
    resumes at the same question with the same token, staff sign in, new rows get new ids."""
    app = site.app()
    try:
        rec = app.test_client()
        cred = site.info.credentials("recruiter")
        login(rec, cred.email, cred.password)
        assert rec.get(f"/api/v1/reports/{done['session_id']}").json == report
        c = app.test_client()
        auth = {"Authorization": f"Bearer {live['token']}"}
        now = c.get(f"/api/v1/sessions/{live['session_id']}", headers=auth).json
        assert now["pending_item"] == live_state["pending_item"]
        assert now["answered"] == live_state["answered"] == 3
        item = now["pending_item"]
        r = c.post(f"/api/v1/sessions/{live['session_id']}/responses", headers=auth,
                   json={"item_id": item["item_id"], "answer": item["options"][0]["id"]})
        assert r.status_code == 200 and r.json["answered"] == 4
        csrf = csrf_of(rec.get("/recruiter/invitations/new").data)
        aid = site.sql("SELECT MIN(id) FROM assessments")[0][0]
        r = rec.post("/api/v1/invitations", json={"assessment_id": aid, "count": 2},
                     headers={"X-CSRFToken": csrf})
        assert r.status_code == 201, r.data  # the id sequences were moved past the dump
    finally:
        site.close_apps()


def test_import_refuses_a_broken_or_foreign_file(tmp_path: Path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    assert proficio(["db", "import", "--database-url", url, str(bad)]) == 2
    assert "field 'format'" in capsys.readouterr().err
    bad.write_text("{not json")
    assert proficio(["db", "import", "--database-url", url, str(bad)]) == 2
    assert proficio(["db", "import", "--database-url", url, str(tmp_path / "none")]) == 2


# -- publishing a recalibration ----------------------------------------------------------------


def _succeeded_job(site: Site, extra: list[dict] | None = None) -> int:
    """A finished calibration job holding new parameters for three bank items, each
    recommended for publishing (what the API's publish takes by default)."""
    from calibration.recalibrate import (
        RecalibratedItem,
        Recalibration,
        RecalibrationSettings,
    )
    from irt import ItemParams

    bank_id = site.sql("SELECT b.id FROM item_banks b JOIN organisations o "
                       "ON o.id = b.organisation_id WHERE o.slug = 'demo' ORDER BY b.id")[0][0]
    rows = site.sql("SELECT i.external_id, s.slug, v.a, v.b FROM items i "
                    "JOIN skills s ON s.id = i.skill_id "
                    "JOIN item_parameter_versions v ON v.item_id = i.id AND v.is_current "
                    "WHERE i.bank_id = :b ORDER BY i.external_id LIMIT 3", b=bank_id)
    specs = [(iid, skill, a * 1.1, b + 0.2) for iid, skill, a, b in rows]
    specs += [(x["item_id"], x["skill"], x["a"], x["b"]) for x in extra or []]
    items = tuple(RecalibratedItem(
        item_id=iid, skill=skill, model="2pl", status="operational", role="estimated",
        current=None, current_se_a=None, current_se_b=None, current_n=None,
        current_provisional=True, new=ItemParams(iid, "2pl", a, b, skill=skill), se_a=0.1,
        se_b=0.1, se_c=None, n_responses=500, fit=None, drift=None, analysis=None, bound="",
        action="publish", action_reason="test") for iid, skill, a, b in specs)
    result = Recalibration(RecalibrationSettings(mode="free"), items, (), None, (), 500, 1500,
                           -900.0, True, 20)
    eng = create_db_engine(site.url)
    with transaction(eng) as db:
        user = db.query(StaffUser).filter_by(email=site.info.credentials(
            "psychometrician").email).one()
        job = CalibrationJob(bank_id=bank_id, created_by_id=user.id, status="succeeded",
                             progress=1.0,
                             settings={"model": "2pl", "mode": "free", "prior_a_sd": 0.5,
                                       "skills": []},
                             result=result.to_dict(), message="done")
        db.add(job)
        db.flush()
        job_id = job.id
    eng.dispose()
    return job_id


def _versions(site: Site) -> tuple:
    return (site.sql("SELECT id, item_id, a, b, is_current, calibration_run_id FROM "
                     "item_parameter_versions ORDER BY id"),
            site.sql("SELECT id FROM calibration_runs ORDER BY id"))


def _psychometrician(site: Site, app):  # type: ignore[no-untyped-def]
    c = app.test_client()
    cred = site.info.credentials("psychometrician")
    login(c, cred.email, cred.password)
    return c, csrf_of(c.get("/psychometrician/import").data)


def test_publish_with_an_unknown_item_at_the_end_changes_nothing(site: Site, app):
    unknown = {"item_id": "NOT-IN-BANK-999", "skill": "testing", "model": "2pl", "a": 1.0,
               "b": 0.0, "c": 0.0, "d": 1.0, "se_a": 0.1, "se_b": 0.1, "se_c": None,
               "n_responses": 500, "status": "pretest", "anchor": False}
    job_id = _succeeded_job(site, [unknown])
    before = _versions(site)
    c, csrf = _psychometrician(site, app)
    r = c.post(f"/api/v1/calibrations/{job_id}/publish", headers={"X-CSRFToken": csrf})
    assert r.status_code == 409 and "NOT-IN-BANK-999" in r.json["message"]
    assert _versions(site) == before
    assert site.sql("SELECT status FROM calibration_jobs WHERE id = :j", j=job_id) == \
        [("succeeded",)]


def test_publish_failing_half_way_leaves_the_previous_version_current(site: Site, app):
    """The database fails when the new parameter rows are written — after the run was recorded
    and the old versions were marked not current, in the same transaction: all of it rolls
    back."""
    job_id = _succeeded_job(site)
    before = _versions(site)
    engine = app.extensions["proficio.db"].engine
    seen: list[str] = []

    def fail_on_new_versions(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement.split(None, 3)[:3][-1] if statement.startswith("INSERT")
                    else statement.split(None, 1)[0])
        if statement.lstrip().upper().startswith("INSERT INTO ITEM_PARAMETER_VERSIONS"):
            raise OperationalError(statement, parameters, RuntimeError("injected I/O error"))

    c, csrf = _psychometrician(site, app)
    event.listen(engine, "before_cursor_execute", fail_on_new_versions)
    try:
        r = c.post(f"/api/v1/calibrations/{job_id}/publish", headers={"X-CSRFToken": csrf})
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_new_versions)
    # half-way indeed: the run row and the demotion of the old versions had been executed
    assert "item_parameter_versions" in seen, seen
    k = seen.index("item_parameter_versions")
    assert "calibration_runs" in seen[:k] and "UPDATE" in seen[:k], seen
    assert r.status_code == 503 and "try again" in r.json["message"]
    assert _versions(site) == before  # no run, no new version, old ones still current
    assert site.sql("SELECT status FROM calibration_jobs WHERE id = :j", j=job_id) == \
        [("succeeded",)]
    # once the database is healthy again the same job publishes cleanly
    r = c.post(f"/api/v1/calibrations/{job_id}/publish", headers={"X-CSRFToken": csrf})
    assert r.status_code == 200, r.data
    run_id = r.json["calibration_run_id"]
    current = site.sql("SELECT COUNT(*) FROM item_parameter_versions WHERE is_current AND "
                       "calibration_run_id = :r", r=run_id)[0][0]
    assert current == 3
    assert site.sql("SELECT COUNT(*) FROM item_parameter_versions WHERE is_current")[0][0] == \
        sum(1 for row in before[0] if row[4])
