"""Access to the JSON API: every endpoint × identity × own/other organisation with exact status
codes; candidate tokens confined to one session; invitation links that cannot be enumerated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tests.reliability.conftest import Site, csrf_of

WHO = ("anonymous", "candidate", "recruiter", "psychometrician", "other")


@pytest.fixture
def world(site: Site, app: Flask, staff_client: Callable[[str], FlaskClient]) -> dict:
    """Rows in both organisations, a candidate with a live session, and one client per
    identity; every client carries a CSRF token (anonymous ones take it from the login page),
    so the statuses below are about authorization, not CSRF."""
    sessions = {}
    for org in ("demo", "other"):
        (token,) = site.invite(org=org)
        r = app.test_client().post("/api/v1/sessions", json={"invitation": token})
        assert r.status_code == 201
        sessions[org] = r.json
    ids = {}
    for org in ("demo", "other"):
        sid = sessions[org]["session_id"]
        inv, aid = site.sql("SELECT invitation_id, assessment_id FROM test_sessions "
                            "WHERE id = :s", s=sid)[0]
        ids[org] = {"session_id": sid, "invitation_id": inv, "assessment_id": aid,
                    "bank_id": site.bank_id(org),
                    "public_id": site.sql("SELECT c.public_id FROM candidates c JOIN "
                                          "test_sessions s ON s.candidate_id = c.id "
                                          "WHERE s.id = :s", s=sid)[0][0]}
    clients, csrf = {}, {}
    for who in WHO:
        c = staff_client(who) if who in ("recruiter", "psychometrician", "other") \
            else app.test_client()
        clients[who] = c
        csrf[who] = csrf_of(c.get("/login").data) if who in ("anonymous", "candidate") \
            else csrf_of(c.get("/recruiter/" if who != "psychometrician"
                               else "/psychometrician/import").data)
    return {"sessions": sessions, "ids": ids, "clients": clients, "csrf": csrf}


def _call(world: dict, who: str, method: str, url: str, body: dict | None = None):
    headers = {"X-CSRFToken": world["csrf"][who]}
    if who == "candidate":
        headers["Authorization"] = f"Bearer {world['sessions']['demo']['token']}"
    return world["clients"][who].open(url, method=method, json=body, headers=headers)


# (method, path, body, {identity: status}); targets: rows of the demo organisation.
# 'other' is the recruiter of the other organisation; 'candidate' holds demo's session token.
STAFF_MATRIX = [
    ("GET", "/api/v1/assessments", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 200, "psychometrician": 200,
      "other": 200}),
    ("GET", "/api/v1/invitations", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 200, "psychometrician": 403,
      "other": 200}),
    ("GET", "/api/v1/invitations?assessment_id={assessment_id}", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 200, "psychometrician": 403,
      "other": 404}),
    ("POST", "/api/v1/invitations", {"assessment_id": "{assessment_id}", "count": 1},
     {"anonymous": 401, "candidate": 401, "recruiter": 201, "psychometrician": 403,
      "other": 404}),
    ("GET", "/api/v1/reports/{session_id}", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 200, "psychometrician": 403,
      "other": 404}),
    # accountable results (issue 21); the session routes are in tests/web/test_authorization.py
    ("GET", "/api/v1/candidates/{public_id}/export", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 200, "psychometrician": 403,
      "other": 404}),
    ("GET", "/api/v1/privacy", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 403,
      "other": 403}),
    ("PUT", "/api/v1/privacy", {"retention_days": 30, "explain_to_candidates": False},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 403,
      "other": 403}),
    ("GET", "/api/v1/banks", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 200,
      "other": 403}),
    ("POST", "/api/v1/banks", {"slug": "Not A Slug", "name": "x"},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 422,
      "other": 403}),
    ("POST", "/api/v1/banks/{bank_id}/library", {"library": True},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 204,
      "other": 403}),
    ("POST", "/api/v1/banks/{bank_id}/copy", {"slug": "Not A Slug", "name": "x"},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 422,
      "other": 403}),
    ("POST", "/api/v1/banks/{bank_id}/pooling-consent", {"consent": True},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 409,
      "other": 403}),
    ("GET", "/api/v1/bank", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 200,
      "other": 403}),
    ("POST", "/api/v1/bank", {"format": "not-a-bank"},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 422,
      "other": 403}),
    ("POST", "/api/v1/calibrations", {"model": "2pl"},
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 202,
      "other": 403}),
    ("GET", "/api/v1/calibrations/2147483000", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 404,
      "other": 403}),
    ("POST", "/api/v1/calibrations/2147483000/publish", None,
     {"anonymous": 401, "candidate": 401, "recruiter": 403, "psychometrician": 404,
      "other": 403}),
    ("POST", "/api/v1/candidates/{public_id}/erase", None,
     {"anonymous": 401, "candidate": 401, "psychometrician": 403, "other": 404,
      "recruiter": 204}),
    # last: it revokes demo's invitation for the recruiter
    ("POST", "/api/v1/invitations/{invitation_id}/revoke", None,
     {"anonymous": 401, "candidate": 401, "psychometrician": 403, "other": 404,
      "recruiter": 204}),
]


def _fill(value, ids: dict):
    if isinstance(value, str):
        filled = value.format(**ids)
        return int(filled) if value.startswith("{") and filled.isdigit() else filled
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def test_every_api_endpoint_is_in_the_matrix(app: Flask):
    rules = {(m, r.rule) for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1/")
             for m in r.methods - {"HEAD", "OPTIONS"} if not r.rule.startswith("/api/v1/sessions")}
    covered = {(m, p.split("?")[0].replace("{public_id}", "<public_id>")
                .replace("{", "<int:").replace("}", ">")
                .replace("2147483000", "<int:job_id>")) for m, p, _, _ in STAFF_MATRIX}
    assert rules == covered, rules ^ covered


def test_api_authorization_matrix(site: Site, world: dict):
    before_other = site.sql("SELECT id, status FROM invitations WHERE id = :i",
                            i=world["ids"]["other"]["invitation_id"])
    for method, path, body, expected in STAFF_MATRIX:
        for who in sorted(expected, key=lambda w: w == "recruiter"):  # the allowed caller last
            url, payload = _fill(path, world["ids"]["demo"]), _fill(body, world["ids"]["demo"])
            r = _call(world, who, method, url, payload)
            assert r.status_code == expected[who], f"{who} {method} {url}: {r.status_code} " \
                                                   f"{r.data[:200]!r}"
            if r.status_code >= 400:
                assert r.is_json and r.json["code"] == r.status_code
    # what each organisation sees in its lists
    demo_rows = _call(world, "recruiter", "GET", "/api/v1/invitations").json
    other_rows = _call(world, "other", "GET", "/api/v1/invitations").json
    assert {r["invitation_id"] for r in demo_rows}.isdisjoint(
        {r["invitation_id"] for r in other_rows})
    assert world["ids"]["other"]["invitation_id"] in {r["invitation_id"] for r in other_rows}
    other_assessments = {a["id"] for a in _call(world, "other", "GET",
                                                   "/api/v1/assessments").json}
    assert other_assessments == {world["ids"]["other"]["assessment_id"]}
    assert site.sql("SELECT id, status FROM invitations WHERE id = :i",
                    i=world["ids"]["other"]["invitation_id"]) == before_other


def test_staff_writes_without_the_csrf_header_are_refused(site: Site, world: dict):
    n = site.sql("SELECT COUNT(*) FROM invitations")[0][0]
    c = world["clients"]["recruiter"]
    r = c.post("/api/v1/invitations",
               json={"assessment_id": world["ids"]["demo"]["assessment_id"], "count": 1})
    assert r.status_code == 400 and "CSRF" in r.json["message"]
    assert site.sql("SELECT COUNT(*) FROM invitations")[0][0] == n


def test_candidate_endpoints_matrix(site: Site, world: dict):
    demo, other = world["sessions"]["demo"], world["sessions"]["other"]
    sid, osid = demo["session_id"], other["session_id"]
    item = demo["pending_item"]
    answer = {"item_id": item["item_id"], "answer": item["options"][0]["id"]}
    own = {"Authorization": f"Bearer {demo['token']}"}
    cases = [  # (headers, session id, expected status) for GET and POST
        ({}, sid, 401),
        ({"Authorization": "Basic abc"}, sid, 401),
        ({"Authorization": "Bearer "}, sid, 401),
        ({"Authorization": "Bearer " + "x" * 300}, sid, 401),
        ({"Authorization": "Bearer not-a-real-token-000000000000000"}, sid, 404),
        (own, osid, 404),  # own token, other candidate's session
        ({"Authorization": f"Bearer {other['token']}"}, sid, 404),
        (own, 2147483647, 404),
    ]
    state_before = site.sql("SELECT id, state_version FROM test_sessions ORDER BY id")
    anon = world["clients"]["anonymous"]
    staff = world["clients"]["recruiter"]  # a staff cookie is no candidate credential
    for headers, target, want in cases:
        for c in (anon, staff):
            assert c.get(f"/api/v1/sessions/{target}", headers=headers).status_code == want
            r = c.post(f"/api/v1/sessions/{target}/responses", headers=headers, json=answer)
            assert r.status_code == want, (headers, target, r.status_code)
    assert site.sql("SELECT id, state_version FROM test_sessions ORDER BY id") == state_before
    assert site.sql("SELECT COUNT(*) FROM responses")[0][0] == 0
    r = anon.post(f"/api/v1/sessions/{sid}/responses", headers=own, json=answer)
    assert r.status_code == 200 and r.json["answered"] == 1


def test_resuming_rotates_the_token_and_the_old_one_stops_working(site: Site, client):
    (token,) = site.invite()
    first = client.post("/api/v1/sessions", json={"invitation": token}).json
    again = client.post("/api/v1/sessions", json={"invitation": token}).json
    assert again["session_id"] == first["session_id"] and again["token"] != first["token"]
    url = f"/api/v1/sessions/{first['session_id']}"
    assert client.get(url, headers={"Authorization": f"Bearer {first['token']}"}
                      ).status_code == 404
    assert client.get(url, headers={"Authorization": f"Bearer {again['token']}"}
                      ).status_code == 200


def _statements(app: Flask, call: Callable[[], object]) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    engine = app.extensions["proficio.db"].engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_unknown_expired_and_revoked_links_take_the_same_path(site: Site, app: Flask):
    """Equal work up to the decision (the timing itself is measured in
    benchmarks/bench_fuzz_tokens.py, not asserted here)."""
    expired, revoked = site.invite(2)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    site.sql("UPDATE invitations SET expires_at = :p WHERE id = (SELECT MAX(id) - 1 FROM "
             "invitations)", p=past)
    site.sql("UPDATE invitations SET status = 'revoked' WHERE id = (SELECT MAX(id) FROM "
             "invitations)")
    c = app.test_client()
    tokens = {"unknown": "u" * 43, "expired": expired, "revoked": revoked}
    for label, call in (
            ("api", lambda t: c.post("/api/v1/sessions", json={"invitation": t})),
            ("welcome page", lambda t: c.get(f"/t/{t}")),
            ("question page", lambda t: c.get(f"/t/{t}/question"))):
        paths, codes = {}, {}
        for kind, token in tokens.items():
            box = []
            paths[kind] = _statements(app, lambda t=token, b=box, f=call: b.append(f(t)))
            codes[kind] = box[0].status_code
        assert codes["unknown"] == 404 and codes["expired"] == codes["revoked"] == 410, codes
        assert paths["unknown"] == paths["expired"] == paths["revoked"], (label, paths)
        assert len(paths["unknown"]) <= 2  # (BEGIN and) one query


def test_starting_sessions_is_rate_limited(site: Site):
    app = site.app(RATELIMIT_ENABLED=True)
    c = app.test_client()
    codes = [c.post("/api/v1/sessions", json={"invitation": f"guess-{k:030d}"}).status_code
             for k in range(32)]
    assert codes[:30] == [404] * 30 and codes[30:] == [429, 429]
    r = c.post("/api/v1/sessions", json={"invitation": "guess-again-0000000000000"})
    assert r.status_code == 429 and r.json["code"] == 429 and "Retry-After" in r.headers
    pages = [c.get(f"/t/guess-{k:030d}").status_code for k in range(31)]
    assert pages[-1] == 429
    site.close_apps()
