"""Authorization matrix: every staff route × every role × own / other organisation.

The expected status codes are exact: anonymous HTML → 302 to the login page, anonymous API →
401, a role without access → 403, another organisation's row → 404, own row → 200.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.conftest import Site

STAFF_PREFIXES = ("/recruiter", "/psychometrician", "/api/v1")
CANDIDATE_API = "/api/v1/sessions"


def staff_rules(app: Flask) -> list:
    return [r for r in app.url_map.iter_rules()
            if r.rule.startswith(STAFF_PREFIXES) and not r.rule.startswith(CANDIDATE_API)]


def test_every_staff_route_declares_its_roles(app: Flask) -> None:
    missing = [r.rule for r in staff_rules(app)
               if not hasattr(app.view_functions[r.endpoint], "required_roles")]
    assert not missing, f"staff routes without staff_required: {missing}"
    assert len(staff_rules(app)) >= 20


def _ids(site: Site) -> dict[str, dict[str, object]]:
    """Path parameters for rows of the demo organisation ('own') and the other one."""
    rows = site.sql("SELECT s.id, v.id, a.id, o.slug, c.public_id FROM test_sessions s "
                    "JOIN invitations v ON v.id = s.invitation_id "
                    "JOIN candidates c ON c.id = s.candidate_id "
                    "JOIN assessments a ON a.id = s.assessment_id "
                    "JOIN organisations o ON o.id = a.organisation_id ORDER BY s.id")
    by_org: dict[str, dict[str, object]] = {}
    for sid, vid, aid, org, pid in rows:
        by_org.setdefault(org, {"session_id": sid, "invitation_id": vid, "assessment_id": aid,
                                "public_id": pid})
    for org in ("demo", "other"):
        assert org in by_org, f"no session in organisation {org}"
    return by_org


@pytest.fixture
def sessions_in_both_orgs(site: Site, client: FlaskClient) -> dict[str, dict[str, object]]:
    for org in ("demo", "other"):
        (token,) = site.invite(org=org)
        assert client.post("/api/v1/sessions", json={"invitation": token}).status_code == 201
    return _ids(site)


# (method, path template, roles allowed, org-scoped?)
ROUTES = [
    ("GET", "/recruiter/", ("recruiter",), False),
    ("GET", "/recruiter/invitations/new", ("recruiter",), False),
    ("GET", "/recruiter/sessions/{session_id}", ("recruiter",), True),
    ("GET", "/recruiter/assessments/{assessment_id}/compare", ("recruiter",), True),
    ("GET", "/recruiter/assessments/{assessment_id}/compare.csv", ("recruiter",), True),
    ("GET", "/recruiter/?assessment={assessment_id}", ("recruiter",), True),
    ("GET", "/psychometrician/", ("psychometrician",), False),
    ("GET", "/psychometrician/items/SRV-001", ("psychometrician",), False),
    ("GET", "/psychometrician/import", ("psychometrician",), False),
    ("GET", "/psychometrician/calibrations", ("psychometrician",), False),
    ("GET", "/api/v1/assessments", ("recruiter", "psychometrician"), False),
    ("GET", "/api/v1/invitations", ("recruiter",), False),
    ("GET", "/api/v1/invitations?assessment_id={assessment_id}", ("recruiter",), True),
    ("GET", "/api/v1/reports/{session_id}", ("recruiter",), True),
    ("GET", "/api/v1/bank", ("psychometrician",), False),
    # accountable results (issue 21)
    ("GET", "/psychometrician/sessions", ("psychometrician",), False),
    ("GET", "/psychometrician/sessions/{session_id}/replay", ("psychometrician",), True),
    ("GET", "/api/v1/sessions/{session_id}/replay", ("psychometrician",), True),
    ("GET", "/recruiter/candidates/{public_id}/erase", ("recruiter",), True),
    ("GET", "/recruiter/candidates/{public_id}/export.json", ("recruiter",), True),
    ("GET", "/api/v1/candidates/{public_id}/export", ("recruiter",), True),
    ("GET", "/api/v1/privacy", ("admin",), False),
]
WHO = ("anonymous", "recruiter", "psychometrician", "other")


def expected(path: str, allowed: tuple[str, ...], scoped: bool, who: str, target: str) -> int:
    api = path.startswith("/api/")
    if who == "anonymous":
        return 401 if api else 302
    role = "recruiter" if who == "other" else who
    if role not in allowed:
        return 403
    own_org = "other" if who == "other" else "demo"
    if scoped and target != own_org:
        return 404
    return 200


@pytest.mark.parametrize(("method", "path", "allowed", "scoped"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_authorization_matrix(site: Site, app: Flask, staff_client: Callable[[str], FlaskClient],
                              sessions_in_both_orgs, method, path, allowed, scoped) -> None:
    clients = {who: (app.test_client() if who == "anonymous" else staff_client(who))
               for who in WHO}
    targets = ("demo", "other") if scoped else ("demo",)
    for who, c in clients.items():
        for target in targets:
            url = path.format(**sessions_in_both_orgs[target])
            r = c.open(url, method=method)
            want = expected(path, allowed, scoped, who, target)
            assert r.status_code == want, f"{who} {method} {url} (rows of {target}): " \
                                          f"{r.status_code} != {want}"
            if want == 302:
                assert "/login" in r.headers["Location"]


POSTS = [
    ("/recruiter/invitations/{invitation_id}/revoke", ("recruiter",), True),
    ("/api/v1/invitations/{invitation_id}/revoke", ("recruiter",), True),
    ("/psychometrician/items/SRV-001/status", ("psychometrician",), False),
    ("/psychometrician/calibrations/999999/publish", ("psychometrician",), False),
    ("/api/v1/calibrations/999999/publish", ("psychometrician",), False),
    ("/recruiter/candidates/{public_id}/erase", ("recruiter",), True),
    ("/api/v1/candidates/{public_id}/erase", ("recruiter",), True),
    ("/recruiter/sessions/{session_id}/review", ("recruiter",), True),
    ("/api/v1/sessions/{session_id}/review", ("recruiter",), True),
    ("/admin/privacy", ("admin",), False),
]


@pytest.mark.parametrize(("path", "allowed", "scoped"), POSTS, ids=[p for p, _, _ in POSTS])
def test_writes_are_refused_to_anonymous_wrong_role_and_other_org(
        site: Site, app: Flask, staff_client, sessions_in_both_orgs, path, allowed, scoped):
    app.config["WTF_CSRF_ENABLED"] = False  # this test is about authorization, not CSRF
    before = (site.sql("SELECT id, status, token_hash FROM invitations ORDER BY id"),
              site.sql("SELECT external_id, status FROM items ORDER BY external_id"),
              site.sql("SELECT id, name FROM candidates ORDER BY id"),
              site.sql("SELECT count(*) FROM result_reviews"))
    url = path.format(**sessions_in_both_orgs["demo"])  # every caller aims at demo's rows
    for who in WHO:
        role = "recruiter" if who == "other" else who
        if role in allowed and not (who == "other" and scoped):
            continue  # the legitimate caller: covered by the functional tests
        c = app.test_client() if who == "anonymous" else staff_client(who)
        r = c.post(url, data={"status": "retired", "confirm": "erase", "reason": "x"})
        if who == "anonymous":
            assert r.status_code == (401 if url.startswith("/api/") else 302)
        elif role not in allowed:
            assert r.status_code == 403, (who, url, r.status_code)
        else:
            assert r.status_code == 404, (who, url, r.status_code)
    after = (site.sql("SELECT id, status, token_hash FROM invitations ORDER BY id"),
             site.sql("SELECT external_id, status FROM items ORDER BY external_id"),
             site.sql("SELECT id, name FROM candidates ORDER BY id"),
             site.sql("SELECT count(*) FROM result_reviews"))
    assert after == before
