"""No secret in logs or API responses: a full flow (staff login, invitations through the API,
a candidate's whole adaptive test, reports, bank export, a failed login, logout) runs with every
logger at DEBUG, and neither the captured records nor the JSON responses contain a password, a
password hash, the SECRET_KEY, an invitation or session token, their stored hashes, a CSRF token
or the session cookie (tokens and links appear only in the one response that issues them)."""

from __future__ import annotations

import json
import logging

import pytest

from tests.reliability.conftest import Site, csrf_of, login


def test_no_secret_in_logs_or_api_responses(site: Site, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    app = site.app()
    app.logger.setLevel(logging.DEBUG)
    responses: list[tuple[str, str]] = []  # (request, body) of every JSON answer
    issued: set[str] = set()  # responses allowed to carry a token: the ones that issue it

    def record(label: str, r, issues: bool = False) -> None:  # type: ignore[no-untyped-def]
        if r.is_json:
            responses.append((label, r.get_data(as_text=True)))
            if issues:
                issued.add(label)

    rec_cred = site.info.credentials("recruiter")
    psy_cred = site.info.credentials("psychometrician")
    rec, psy, anon = app.test_client(), app.test_client(), app.test_client()
    csrf_login = csrf_of(rec.get("/login").data)
    rec.post("/login", data={"csrf_token": csrf_login, "email": rec_cred.email,
                             "password": "wrong-password-1234"})  # a failed attempt is logged
    login(rec, rec_cred.email, rec_cred.password)
    login(psy, psy_cred.email, psy_cred.password)
    csrf = csrf_of(rec.get("/recruiter/invitations/new").data)
    aid = site.sql("SELECT a.id FROM assessments a JOIN organisations o "
                   "ON o.id = a.organisation_id WHERE o.slug = 'demo'")[0][0]
    r = rec.post("/api/v1/invitations", json={"assessment_id": aid, "names": ["Ada"]},
                 headers={"X-CSRFToken": csrf})
    assert r.status_code == 201
    record("POST /api/v1/invitations", r, issues=True)
    link = r.json[0]["link"]
    invitation_token = link.rsplit("/", 1)[1]

    r = anon.post("/api/v1/sessions", json={"invitation": invitation_token})
    record("POST /api/v1/sessions (start)", r, issues=True)
    first_token, sid = r.json["token"], r.json["session_id"]
    r = anon.post("/api/v1/sessions", json={"invitation": invitation_token})  # resume
    record("POST /api/v1/sessions (resume)", r, issues=True)
    bearer = r.json["token"]
    state = r.json
    while state["status"] == "in_progress":
        it = state["pending_item"]
        r = anon.post(f"/api/v1/sessions/{sid}/responses",
                      headers={"Authorization": f"Bearer {bearer}"},
                      json={"item_id": it["item_id"], "answer": it["options"][-1]["id"]})
        record("POST responses", r)
        state = r.json
    record("GET session", anon.get(f"/api/v1/sessions/{sid}",
                                   headers={"Authorization": f"Bearer {bearer}"}))
    record("GET session (old token)", anon.get(
        f"/api/v1/sessions/{sid}", headers={"Authorization": f"Bearer {first_token}"}))
    for url in ("/api/v1/invitations", f"/api/v1/reports/{sid}", "/api/v1/assessments"):
        record(url, rec.get(url))
    record("GET /api/v1/bank", psy.get("/api/v1/bank"))
    record("GET /api/openapi.json", anon.get("/api/openapi.json"))
    for page in (f"/t/{invitation_token}", f"/t/{invitation_token}/done", "/recruiter/"):
        (rec if page.startswith("/recruiter") else anon).get(page)
    cookie = rec.get_cookie("session").value
    rec.post("/logout", data={"csrf_token": csrf_of(rec.get("/recruiter/").data)})

    staff_hashes = [h for (h,) in site.sql("SELECT password_hash FROM staff_users")]
    token_hashes = [h for (h,) in site.sql("SELECT token_hash FROM invitations UNION ALL "
                                           "SELECT token_hash FROM test_sessions "
                                           "WHERE token_hash IS NOT NULL")]
    secrets = {"recruiter password": rec_cred.password, "psychometrician password":
               psy_cred.password, "failed password": "wrong-password-1234",
               "SECRET_KEY": app.config["SECRET_KEY"], "invitation token": invitation_token,
               "first session token": first_token, "session token": bearer,
               "CSRF token": csrf, "session cookie": cookie}
    secrets.update({f"password hash {k}": h for k, h in enumerate(staff_hashes)})
    secrets.update({f"token hash {k}": h for k, h in enumerate(token_hashes)})
    assert all(len(v) >= 16 for v in secrets.values())

    log_text = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {json.dumps(r.__dict__, default=str)}"
        for r in caplog.records)
    assert len(caplog.records) > 0  # the flow did log (logins, sessions, answers)
    leaks = [name for name, value in secrets.items() if value in log_text]
    assert not leaks, f"in the logs: {leaks}"

    for label, body in responses:
        allowed = set()
        if label in issued:
            allowed = {"invitation token"} if "invitations" in label else {
                "first session token" if "start" in label else "session token"}
        leaks = [name for name, value in secrets.items()
                 if value in body and name not in allowed]
        assert not leaks, f"{label} leaks {leaks}"
    assert "$argon2" not in "".join(b for _, b in responses)
    site.close_apps()
