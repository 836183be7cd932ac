"""Accountable results (issue 21), through the real app on both backends: session replay (page and
``proficio-replay/1`` JSON) re-scores the stored answers to the stored result; a recruiter's
review is shown with the report and the comparison and audit-logged; the candidate explanation
names no question or key; erasure leaves no personal value of the candidate in any table, export
or log line, and leaves the response log (hence calibrations) unchanged; retention erases by
the scheduled job."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.models import Base, Organisation
from item_bank.security import hash_token
from tests.web.conftest import Site, csrf_of, login
from tests.web.test_reports import _answer_all, _keys
from web.services import privacy

NAME = "Zyxwa Quentorp-Ibsel"
EMAIL = "zyxwa.quentorp@mailbox.example"
NOTE = "Dyslexia: reads slowly (Quentorp)"
REASON = "Discussed with Zyxwa by phone on Monday"


def _demo_bank(site: Site) -> int:
    return int(site.sql("SELECT a.bank_id FROM assessments a JOIN organisations o ON o.id = "
                        "a.organisation_id WHERE o.slug = 'demo' ORDER BY a.id")[0][0])


def _org_id(site: Site, slug: str = "demo") -> int:
    return int(site.sql("SELECT id FROM organisations WHERE slug = :s", s=slug)[0][0])


def _finished_session(site: Site, app: Flask, correct: bool = True) -> int:
    (token,) = site.invite()
    return _answer_all(app.test_client(), site, token, correct=correct)


def _alternating_session(site: Site, app: Flask, first_correct: bool) -> int:
    """A finished session answered right and wrong in turn, so the items it saw get both scores."""
    (token,) = site.invite()
    return _answer_all(app.test_client(), site, token, correct=first_correct, alternate=True)


def _admin(site: Site, app: Flask) -> FlaskClient:
    password = "admin-password-123456"
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            org = db.scalar(select(Organisation).where(Organisation.slug == "demo"))
            if not db.execute(text("SELECT 1 FROM staff_users WHERE email = 'admin@demo.example'")
                              ).first():
                repo.create_staff_user(db, org, "admin@demo.example", "admin", password)
    finally:
        eng.dispose()
    c = app.test_client()
    login(c, "admin@demo.example", password)
    return c


# -- replay --------------------------------------------------------------------------------------

def test_replay_re_scores_the_stored_answers_to_the_stored_result(site: Site, app: Flask,
                                                                  staff_client) -> None:
    sid = _finished_session(site, app, correct=False)
    psy = staff_client("psychometrician")
    body = psy.get(f"/api/v1/sessions/{sid}/replay").get_json()
    assert body["schema"] == "proficio-replay/1"
    ver = body["verification"]
    assert ver["rescoring_reproduced"] and ver["items_reproduced"] and ver["log_matches_state"]
    assert ver["max_difference"] <= 1e-9
    served = site.sql("SELECT i.external_id, r.raw_answer, r.score, r.parameter_version_id "
                      "FROM responses r JOIN items i ON i.id = r.item_id "
                      "WHERE r.session_id = :s ORDER BY r.position", s=sid)
    assert [(i["item_id"], i["answer"], i["score"], i["parameter_version"]["id"])
            for i in body["items"]] == [tuple(r) for r in served]
    stored = dict(site.sql("SELECT k.slug, r.theta FROM skill_results r JOIN skills k "
                           "ON k.id = r.skill_id WHERE r.session_id = :s", s=sid))
    for s in body["skills"]:
        assert abs(s["theta"] - stored[s["skill"]]) <= 1e-9
    for it in body["items"]:
        sel = it["selection"]
        assert sel["rule"] and sel["rank"] >= 1 and sel["n_candidates"] >= sel["rank"]
        assert sel["exposure_decision"] and sel["content_balancing"]
        assert it["after"]["theta"] == pytest.approx(it["after"]["stored_theta"], abs=1e-9)
    # never the items' text or keys
    flat = json.dumps(body)
    assert '"key"' not in flat and '"stem"' not in flat
    stems = site.sql("SELECT i.stem FROM responses r JOIN items i ON i.id = r.item_id "
                     "WHERE r.session_id = :s", s=sid)
    assert not any(stem[:30] in flat for (stem,) in stems)
    page = psy.get(f"/psychometrician/sessions/{sid}/replay")
    assert page.status_code == 200
    assert b"Reproduced." in page.data and b"<svg" in page.data
    assert psy.get("/psychometrician/sessions").status_code == 200


def test_a_tampered_stored_result_is_shown_as_not_reproduced(site: Site, app: Flask,
                                                             staff_client) -> None:
    sid = _finished_session(site, app)
    site.sql("UPDATE skill_results SET theta = theta + 0.001 WHERE session_id = :s", s=sid)
    body = staff_client("psychometrician").get(f"/api/v1/sessions/{sid}/replay").get_json()
    assert not body["verification"]["rescoring_reproduced"]
    assert body["verification"]["max_difference"] == pytest.approx(0.001, rel=1e-6)
    page = staff_client("psychometrician").get(f"/psychometrician/sessions/{sid}/replay")
    assert b"Not reproduced." in page.data


# -- oversight -----------------------------------------------------------------------------------

def test_a_recruiter_reviews_a_result_and_the_report_and_comparison_show_it(
        site: Site, app: Flask, staff_client) -> None:
    sid = _finished_session(site, app)
    rec = staff_client("recruiter")
    page = rec.get(f"/recruiter/sessions/{sid}")
    assert b"Not reviewed yet." in page.data
    csrf = csrf_of(page.data)
    r = rec.post(f"/recruiter/sessions/{sid}/review",
                 data={"csrf_token": csrf, "status": "set_aside", "reason": ""})
    assert r.status_code == 303
    assert site.sql("SELECT count(*) FROM result_reviews WHERE session_id = :s", s=sid)[0][0] == 0
    r = rec.post(f"/recruiter/sessions/{sid}/review",
                 data={"csrf_token": csrf, "status": "set_aside",
                       "reason": "noisy room during the test"})
    assert r.status_code == 303
    page = rec.get(f"/recruiter/sessions/{sid}")
    assert b"Set aside" in page.data and b"noisy room during the test" in page.data
    aid = site.sql("SELECT assessment_id FROM test_sessions WHERE id = :s", s=sid)[0][0]
    assert b"Set aside" in rec.get(f"/recruiter/assessments/{aid}/compare").data
    assert rec.get(f"/api/v1/reports/{sid}").get_json()["review"]["status"] == "set_aside"
    csv_text = rec.get(f"/recruiter/assessments/{aid}/compare.csv").data.decode()
    assert "set_aside" in csv_text
    events = site.sql("SELECT action, target FROM audit_events WHERE action LIKE 'result.%'")
    assert ("result.set_aside", f"session {sid}") in [tuple(e) for e in events]
    # the API: a review, a bad field named, the explanation
    headers = {"X-CSRFToken": csrf}
    r = rec.post(f"/api/v1/sessions/{sid}/review", json={"status": "reviewed",
                                                         "reason": "second look"},
                 headers=headers)
    assert r.status_code == 201 and r.get_json()["status"] == "reviewed"
    r = rec.post(f"/api/v1/sessions/{sid}/review", json={"status": "approved", "reason": "x"},
                 headers=headers)
    assert r.status_code == 422 and "status" in r.get_json()["message"]
    assert rec.get(f"/api/v1/reports/{sid}").get_json()["review"]["reason"] == "second look"
    exp = rec.get(f"/api/v1/sessions/{sid}/explanation").get_json()
    assert exp["n_questions"] >= 1 and exp["skills"]
    # another organisation's recruiter cannot review it
    other = staff_client("other")
    r = other.post(f"/recruiter/sessions/{sid}/review",
                   data={"csrf_token": csrf_of(other.get("/recruiter/").data),
                         "status": "reviewed", "reason": "x"})
    assert r.status_code == 404


# -- explanation ---------------------------------------------------------------------------------

def test_the_candidate_explanation_names_no_question_or_key(site: Site, app: Flask,
                                                            staff_client) -> None:
    (token,) = site.invite()
    client = app.test_client()
    sid = _answer_all(client, site, token, correct=True)
    rec = staff_client("recruiter")
    page = rec.get(f"/recruiter/sessions/{sid}/explanation")
    assert page.status_code == 200
    assert b"How the test adapted to you" in page.data and b"most likely between" in page.data
    served = [i for (i,) in site.sql("SELECT i.external_id FROM responses r JOIN items i "
                                     "ON i.id = r.item_id WHERE r.session_id = :s", s=sid)]
    stems = [s for (s,) in site.sql("SELECT stem FROM items")]
    for item in served:
        assert item.encode() not in page.data
    assert not any(s[:40].encode() in page.data for s in stems if len(s) >= 40)
    # the end-of-test page shows it only when the organisation enables it
    assert b"How your result was obtained" not in client.get(f"/t/{token}/done").data
    admin = _admin(site, app)
    r = admin.put("/api/v1/privacy", json={"retention_days": None,
                                           "explain_to_candidates": True},
                  headers={"X-CSRFToken": csrf_of(admin.get("/admin/privacy").data)})
    assert r.status_code == 200, r.data
    try:
        done = client.get(f"/t/{token}/done")
        assert b"How your result was obtained" in done.data
        assert not any(item.encode() in done.data for item in served)
    finally:
        site.sql("DELETE FROM organisation_privacy")


# -- erasure, export, retention -----------------------------------------------------------------

def _named_candidate_session(site: Site, app: Flask) -> tuple[str, str, int]:
    """A candidate with a name, an e-mail address, an accommodation note and a review reason,
    who took the test through the API (so the session has a bearer token too)."""
    from web.services import staff

    with app.app_context():
        aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o ON o.id = "
                       "a.organisation_id WHERE o.slug = 'demo' ORDER BY a.id")[0][0]
        (inv,) = staff.create_invitations(_org_id(site), None, aid, [(NAME, EMAIL)],
                                          "http://localhost", 14)
    token = inv.link.rsplit("/", 1)[1]
    site.sql("INSERT INTO accommodations (invitation_id, extra_time_percent, break_minutes, "
             "note, granted_at, break_used_seconds) VALUES (:i, 25, 0, :n, :t, 0)",
             i=inv.invitation_id, n=NOTE, t=dt.datetime.now(dt.UTC))
    client = app.test_client()
    r = client.post("/api/v1/sessions", json={"invitation": token})
    assert r.status_code == 201
    session_token = r.get_json()["token"]
    keys = _keys(site)
    sid = r.get_json()["session_id"]
    while True:
        cur = client.get(f"/api/v1/sessions/{sid}",
                         headers={"Authorization": f"Bearer {session_token}"}).get_json()
        if cur["status"] != "in_progress":
            break
        item = cur["pending_item"]["item_id"]
        client.post(f"/api/v1/sessions/{sid}/responses", json={"item_id": item,
                                                               "answer": keys[item]},
                    headers={"Authorization": f"Bearer {session_token}"})
    return token, session_token, sid


def _every_value(site: Site) -> str:
    """Every stored value of every table, as text."""
    out = []
    for table in Base.metadata.sorted_tables:
        for row in site.sql(f'SELECT * FROM "{table.name}"'):
            out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def test_erasure_leaves_no_personal_value_anywhere_and_the_responses_unchanged(
        site: Site, app: Flask, staff_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    # an applicant-tracking system receives the events (their payloads carry name and e-mail)
    site.sql("INSERT INTO webhooks (organisation_id, url, secret, active, created_at) "
             "VALUES (:o, 'https://ats.example/hook', :s, TRUE, :t)", o=_org_id(site),
             s="k" * 40, t=dt.datetime.now(dt.UTC))
    try:
        token, session_token, sid = _named_candidate_session(site, app)
    finally:
        site.sql("UPDATE webhooks SET active = FALSE")
    assert site.sql("SELECT count(*) FROM webhook_deliveries d JOIN test_sessions s ON "
                    "s.id = :s", s=sid)[0][0] >= 1
    public_id = site.sql("SELECT c.public_id FROM candidates c JOIN test_sessions s ON "
                         "s.candidate_id = c.id WHERE s.id = :s", s=sid)[0][0]
    rec = staff_client("recruiter")
    csrf = csrf_of(rec.get(f"/recruiter/sessions/{sid}").data)
    assert rec.post(f"/recruiter/sessions/{sid}/review", data={
        "csrf_token": csrf, "status": "reviewed", "reason": REASON}).status_code == 303
    secrets_ = [NAME, EMAIL, NOTE, REASON, token, session_token, hash_token(token),
                hash_token(session_token)]
    before = _every_value(site)
    assert NAME in before and EMAIL in before and hash_token(token) in before
    export = rec.get(f"/api/v1/candidates/{public_id}/export").get_json()
    assert export["candidate"]["name"] == NAME and export["candidate"]["email"] == EMAIL
    responses_before = site.sql("SELECT * FROM responses ORDER BY id")
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            log_before = repo.export_responses(db, bank_id=_demo_bank(site))
        # another organisation cannot erase or read it
        other = staff_client("other")
        assert other.get(f"/api/v1/candidates/{public_id}/export").status_code == 404
        assert other.post(f"/recruiter/candidates/{public_id}/erase", data={
            "csrf_token": csrf_of(other.get("/recruiter/").data),
            "confirm": "erase"}).status_code == 404
        page = rec.get(f"/recruiter/candidates/{public_id}/erase")
        assert rec.post(f"/recruiter/candidates/{public_id}/erase", data={
            "csrf_token": csrf_of(page.data), "confirm": "erase"}).status_code == 303
        after = _every_value(site)
        for value in secrets_:
            assert value not in after, value
        exported = rec.get(f"/api/v1/candidates/{public_id}/export")
        assert exported.status_code == 200
        for value in secrets_:
            assert value not in exported.data.decode(), value
        assert exported.get_json()["erasure"]["reason"] == "request"
        # responses untouched: the append-only log, the calibration input and the replay
        assert site.sql("SELECT * FROM responses ORDER BY id") == responses_before
        with transaction(eng) as db:
            log_after = repo.export_responses(db, bank_id=_demo_bank(site))
        assert log_after.person_ids == log_before.person_ids
        assert log_after.item_ids == log_before.item_ids
        for field in ("person", "item", "response"):
            assert np.array_equal(getattr(log_after.data, field),
                                  getattr(log_before.data, field))
        body = staff_client("psychometrician").get(f"/api/v1/sessions/{sid}/replay").get_json()
        assert body["verification"]["rescoring_reproduced"]
        # the old links no longer work
        assert app.test_client().get(f"/t/{token}").status_code in (404, 410)
        events = site.sql("SELECT action, target FROM audit_events WHERE action = "
                          "'candidate.erased'")
        assert ("candidate.erased", f"candidate {public_id}") in [tuple(e) for e in events]
    finally:
        eng.dispose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in (NAME, EMAIL, NOTE, REASON, token, session_token):
        assert value not in logged


def test_calibration_estimates_are_the_same_before_and_after_erasure(site: Site, app: Flask
                                                                    ) -> None:
    from calibration.recalibrate import RecalibrationSettings, recalibrate
    from irt.io import ResponseLog
    from web.services.calibrations import current_parameters

    # On a fresh PostgreSQL database these sessions are the whole log: all-right and all-wrong
    # sessions alone can leave every item with one score only (then nothing is identified), so
    # alternating sessions give the items both scores whichever questions exposure control drew.
    for i in range(3):
        _named_candidate_session(site, app)
        _finished_session(site, app, correct=False)
        _alternating_session(site, app, first_correct=i % 2 == 0)
        _alternating_session(site, app, first_correct=i % 2 == 1)
    eng = create_db_engine(site.url)

    def fit():
        with transaction(eng) as db:
            export = repo.export_responses(db, skills=["api_design"], bank_id=_demo_bank(site))
            current = current_parameters(db, ["api_design"], bank_id=_demo_bank(site))
        log_ = ResponseLog(export.person_ids, export.item_ids, export.data)
        return recalibrate(log_, current, RecalibrationSettings(mode="anchored"),
                           skills={i: "api_design" for i in export.item_ids}).to_dict()

    try:
        before = fit()
        with transaction(eng) as db:
            org = _org_id(site)
            ids = [c for (c,) in db.execute(text("SELECT public_id FROM candidates WHERE "
                                                 "name = :n"), {"n": NAME})]
        assert ids
        with app.app_context():
            for pid in ids:
                privacy.erase_on_request(org, pid, None)
        assert fit() == before
    finally:
        eng.dispose()


def test_retention_job_erases_inactive_candidates_only(site: Site, app: Flask) -> None:
    _, _, sid = _named_candidate_session(site, app)
    cand = site.sql("SELECT candidate_id FROM test_sessions WHERE id = :s", s=sid)[0][0]
    admin = _admin(site, app)
    page = admin.get("/admin/privacy")
    bad = admin.post("/admin/privacy", data={"csrf_token": csrf_of(page.data),
                                             "retention_days": "0"})
    assert bad.status_code == 422 and b"retention_days" in bad.data
    r = admin.post("/admin/privacy", data={"csrf_token": csrf_of(page.data),
                                           "retention_days": "30"})
    assert r.status_code == 303
    try:
        eng = create_db_engine(site.url)
        try:
            # within the period: nothing is erased
            assert privacy.erase_expired(eng) == 0
            assert site.sql("SELECT name FROM candidates WHERE id = :c", c=cand)[0][0] == NAME
            # 31 days later this candidate (and older inactive ones) are erased
            later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
            assert privacy.erase_expired(eng, now=later) >= 1
            assert site.sql("SELECT name, email FROM candidates WHERE id = :c",
                            c=cand)[0] == (None, None)
            assert site.sql("SELECT reason FROM candidate_erasures WHERE candidate_id = :c",
                            c=cand)[0][0] == "retention"
            assert privacy.erase_expired(eng, now=later) == 0  # idempotent
            other = _org_id(site, "other")
            assert not site.sql("SELECT 1 FROM candidate_erasures e JOIN candidates c ON "
                                "c.id = e.candidate_id WHERE c.organisation_id = :o", o=other)
        finally:
            eng.dispose()
    finally:
        site.sql("DELETE FROM organisation_privacy")


def test_the_command_line_replays_exports_and_erases_with_the_same_functions(
        site: Site, app: Flask, capsys) -> None:
    from web.cli import main

    _, _, sid = _named_candidate_session(site, app)
    public_id = site.sql("SELECT c.public_id FROM candidates c JOIN test_sessions s ON "
                         "s.candidate_id = c.id WHERE s.id = :s", s=sid)[0][0]
    assert main(["sessions", "replay", "--org", "demo", str(sid),
                 "--database-url", site.url]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["schema"] == "proficio-replay/1"
    assert body["verification"]["rescoring_reproduced"]
    assert main(["sessions", "replay", "--org", "other", str(sid),
                 "--database-url", site.url]) == 2  # another organisation's session
    capsys.readouterr()
    assert main(["candidates", "export", "--org", "demo", public_id,
                 "--database-url", site.url]) == 0
    assert json.loads(capsys.readouterr().out)["candidate"]["email"] == EMAIL
    assert main(["candidates", "erase", "--org", "demo", public_id,
                 "--database-url", site.url]) == 0
    assert capsys.readouterr().out.strip() == "erased"
    assert site.sql("SELECT name, email FROM candidates WHERE public_id = :p",
                    p=public_id)[0] == (None, None)
    assert ("candidate.erased", "command line") in [tuple(r) for r in site.sql(
        "SELECT action, actor FROM audit_events WHERE target = :t", t=f"candidate {public_id}")]


def test_a_mail_relay_reply_is_logged_without_the_recipients_address() -> None:
    reply = ("could not send e-mail through smtp.example: SMTPRecipientsRefused: "
             f"{{'{EMAIL}': (550, b'5.1.1 <{EMAIL}>: unknown')}}")
    redacted = privacy.redact_addresses(reply)
    assert EMAIL not in redacted and "SMTPRecipientsRefused" in redacted
    assert redacted.count("<address>") == 2
