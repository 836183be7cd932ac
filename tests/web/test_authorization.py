"""Authorization matrix: every staff route × every role × own / other organisation.

The expected status codes are exact: anonymous HTML → 302 to the login page, anonymous API →
401, a role without access → 403, another organisation's row → 404, own row → 200.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.item_bank.test_response_types import png
from tests.web.conftest import Site, csrf_of

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
    # assessments and their feasibility checks (issue 14); checks: tests/web/test_assessment_form
    ("GET", "/recruiter/assessments", ("recruiter",), False),
    ("GET", "/recruiter/assessments/new", ("recruiter",), False),
    ("GET", "/recruiter/assessments/{assessment_id}/edit", ("recruiter",), True),
    # test security (issue 17)
    ("GET", "/psychometrician/watch-list", ("psychometrician",), False),
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
    ("/recruiter/assessments/new", ("recruiter",), False),
    ("/recruiter/assessments/{assessment_id}/edit", ("recruiter",), True),
    ("/recruiter/assessments/checks/999999/save", ("recruiter",), False),
    ("/psychometrician/alarms/999999", ("psychometrician",), False),
]


@pytest.mark.parametrize(("path", "allowed", "scoped"), POSTS, ids=[p for p, _, _ in POSTS])
def test_writes_are_refused_to_anonymous_wrong_role_and_other_org(
        site: Site, app: Flask, staff_client, sessions_in_both_orgs, path, allowed, scoped):
    app.config["WTF_CSRF_ENABLED"] = False  # this test is about authorization, not CSRF
    before = (site.sql("SELECT id, status, token_hash FROM invitations ORDER BY id"),
              site.sql("SELECT external_id, status FROM items ORDER BY external_id"),
              site.sql("SELECT id, name FROM candidates ORDER BY id"),
              site.sql("SELECT count(*) FROM result_reviews"),
              site.sql("SELECT id, name, blueprint FROM assessments ORDER BY id"),
              site.sql("SELECT count(*) FROM feasibility_checks"))
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
             site.sql("SELECT count(*) FROM result_reviews"),
             site.sql("SELECT id, name, blueprint FROM assessments ORDER BY id"),
             site.sql("SELECT count(*) FROM feasibility_checks"))
    assert after == before


# -- tenancy: psychometricians of two organisations ------------------------------------------
#
# The demo organisation owns the shipped bank, published as a library (the other organisation's
# assessment draws from it); the other organisation owns a private copy of it (same external
# ids). Every psychometrician route and API operation is called by each organisation's
# psychometrician on each organisation's bank and jobs: the owner succeeds; the other
# organisation gets a 404 — except reading and copying a library, which is what a library is
# for — and nothing of the target changes.

PSY = {"demo": "psychometrician", "other": "other_psychometrician"}


def _bank_state(site: Site, bank_id: int) -> tuple:
    """Everything of a bank another organisation must not change."""
    return (site.sql("SELECT external_id, stem, status, key FROM items WHERE bank_id = :b "
                     "ORDER BY external_id", b=bank_id),
            site.sql("SELECT v.id, v.a, v.b, v.is_current FROM item_parameter_versions v "
                     "JOIN items i ON i.id = v.item_id WHERE i.bank_id = :b ORDER BY v.id",
                     b=bank_id),
            site.sql("SELECT id, status FROM calibration_jobs WHERE bank_id = :b ORDER BY id",
                     b=bank_id),
            site.sql("SELECT slug, library FROM item_banks WHERE id = :b", b=bank_id),
            site.sql("SELECT organisation_id, revoked_at FROM response_pooling_consents "
                     "WHERE bank_id = :b ORDER BY id", b=bank_id),
            site.sql("SELECT id, status FROM item_alarms WHERE bank_id = :b ORDER BY id",
                     b=bank_id),
            site.sql("SELECT i.external_id, m.name, m.sha256 FROM item_media m JOIN items i "
                     "ON i.id = m.item_id WHERE i.bank_id = :b ORDER BY m.id", b=bank_id))


def _succeeded_job(site: Site, org: str) -> int:
    """A finished calibration job of the organisation's bank, with new parameters for one of
    its items (published by the matrix)."""
    from item_bank.db import create_db_engine, transaction
    from item_bank.models import CalibrationJob, StaffUser

    bank_id = site.bank_id(org)
    iid, skill = site.sql("SELECT i.external_id, s.slug FROM items i JOIN skills s "
                          "ON s.id = i.skill_id WHERE i.bank_id = :b ORDER BY i.external_id "
                          "LIMIT 1", b=bank_id)[0]
    from calibration.recalibrate import (
        RecalibratedItem,
        Recalibration,
        RecalibrationSettings,
    )
    from irt import ItemParams

    item = RecalibratedItem(
        item_id=iid, skill=skill, model="2pl", status="operational", role="estimated",
        current=None, current_se_a=None, current_se_b=None, current_n=None,
        current_provisional=True, new=ItemParams(iid, "2pl", 1.3, 0.1, skill=skill), se_a=0.1,
        se_b=0.1, se_c=None, n_responses=400, fit=None, drift=None, analysis=None, bound="",
        action="publish", action_reason="test")
    result = Recalibration(RecalibrationSettings(), (item,), (), None, (), 400, 400, -1.0, True,
                           5)
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            email = f"psychometrician@{org}.example"
            user = db.query(StaffUser).filter_by(email=email).one()
            job = CalibrationJob(bank_id=bank_id, created_by_id=user.id, status="succeeded",
                                 progress=1.0, message="done",
                                 settings={"model": "2pl", "mode": "anchored",
                                           "prior_a_sd": 0.5, "skills": []},
                                 result=result.to_dict())
            db.add(job)
            db.flush()
            return job.id
    finally:
        eng.dispose()


def _open_alarm(site: Site, org: str) -> int:
    """An open watch-list alarm on the organisation's bank (decided by the matrix)."""
    bank_id = site.bank_id(org)
    item = site.sql("SELECT id FROM items WHERE bank_id = :b ORDER BY external_id DESC LIMIT 1",
                    b=bank_id)[0][0]
    site.sql("INSERT INTO item_alarms (bank_id, item_id, status, statistic, threshold, "
             "n_responses, n_since_start, correct_since_start, expected_correct_since_start, "
             "created_at, updated_at) VALUES (:b, :i, 'open', 20, 14, 100, 30, 28, 14, "
             ":t, :t)", b=bank_id, i=item, t=dt.datetime.now(dt.UTC))
    return int(site.sql("SELECT max(id) FROM item_alarms WHERE bank_id = :b", b=bank_id)[0][0])


def _bank_json(item_id: str) -> dict:
    return {"format": "proficio-bank/1", "skill": "databases", "items": [
        {"id": item_id, "stem": "Which index?", "key": "a",
         "options": [{"id": "a", "text": "B-tree"}, {"id": "b", "text": "None"}]}]}


def _csrf_header(c: FlaskClient) -> dict[str, str]:
    return {"X-CSRFToken": csrf_of(c.get("/psychometrician/import").data)}


# (name, method, path, body builder or None, how: "form" | "json" | "upload" | None,
#  own status, status for another organisation's library, for another's private bank)
PSYCHOMETRICIAN_OPERATIONS = [
    ("bank page", "GET", "/psychometrician/?bank={bank}", None, None, 200, 404, 404),
    ("item page", "GET", "/psychometrician/items/SRV-001?bank={bank}", None, None,
     200, 404, 404),
    ("item status", "POST", "/psychometrician/items/SRV-002/status?bank={bank}",
     lambda: {"status": "retired"}, "form", 302, 404, 404),
    ("item image upload", "POST", "/psychometrician/items/SRV-001/media?bank={bank}",
     lambda: {"file": (io.BytesIO(png()), "upload.png"), "alt": "A figure"}, "upload",
     302, 404, 404),
    # the image is stored by `_seed_image` first (the test does not depend on the upload's)
    ("item image", "GET", "/psychometrician/items/SRV-001/media/seed.png?bank={bank}", None,
     None, 200, 404, 404),
    ("import page", "POST", "/psychometrician/import?bank={bank}",
     lambda: {"file": (io.BytesIO(json.dumps(_bank_json(f"T-{uuid.uuid4().hex[:8]}"))
                                  .encode()), "b.json")}, "upload", 200, 404, 404),
    ("start calibration", "POST", "/psychometrician/calibrations?bank={bank}",
     lambda: {"model": "2pl", "mode": "anchored", "prior_a_sd": "0.5"}, "form", 302, 404, 404),
    ("calibration page", "GET", "/psychometrician/calibrations/{job}", None, None,
     200, 404, 404),
    # the job's item is the bank's first by id: API-001 in the shipped bank and its copies
    ("preview (page)", "POST", "/psychometrician/calibrations/{job}/preview",
     lambda: {"item": "API-001"}, "form", 200, 404, 404),
    ("publish (page)", "POST", "/psychometrician/calibrations/{job}/publish",
     lambda: {"item": "API-001", "confirm": "yes", "reason": "tenancy matrix"}, "form",
     302, 404, 404),
    # without a reason nothing is rolled back (the owner is told why); others get 404 first
    ("rollback (page)", "POST", "/psychometrician/runs/{run}/rollback", lambda: {"reason": ""},
     "form", 302, 404, 404),
    ("export bank", "GET", "/api/v1/bank?bank_id={bank}", None, None, 200, 200, 404),
    ("import bank", "POST", "/api/v1/bank?bank_id={bank}",
     lambda: _bank_json(f"T-{uuid.uuid4().hex[:8]}"), "json", 201, 404, 404),
    ("replace items", "POST", "/api/v1/bank?bank_id={bank}&replace=true",
     lambda: _bank_json("SRV-001") | {"skill": "server_side"}, "json", 201, 404, 404),
    ("start calibration (API)", "POST", "/api/v1/calibrations",
     lambda: {"bank_id": "{bank}"}, "json", 202, 404, 404),
    ("calibration job", "GET", "/api/v1/calibrations/{job}", None, None, 200, 404, 404),
    ("publish", "POST", "/api/v1/calibrations/{job}/publish", lambda: None, "json",
     200, 404, 404),
    ("library", "POST", "/api/v1/banks/{bank}/library", lambda: {"library": "{library}"},
     "json", 204, 404, 404),  # sets what the bank is: the matrix keeps private banks private
    ("copy", "POST", "/api/v1/banks/{bank}/copy",
     lambda: {"slug": f"c-{uuid.uuid4().hex[:8]}", "name": "Copy"}, "json", 201, 201, 404),
    ("pooling consent", "POST", "/api/v1/banks/{bank}/pooling-consent",
     lambda: {"consent": False}, "json", 409, 204, 404),
    # test security (issue 17): the watch list and its one-step decisions
    ("watch list", "GET", "/psychometrician/watch-list?bank={bank}", None, None, 200, 404, 404),
    ("decide alarm", "POST", "/psychometrician/alarms/{alarm}", lambda: {"action": "dismiss"},
     "form", 302, 404, 404),
]


def _seed_image(site: Site, bank_id: int) -> None:
    """An image ``seed.png`` on the bank's SRV-001."""
    from item_bank import media
    from item_bank.db import create_db_engine, transaction
    from item_bank.models import Item

    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            item = db.query(Item).filter_by(bank_id=bank_id, external_id="SRV-001").one()
            media.store(db, item, "seed.png", "A seeded figure", png())
    finally:
        eng.dispose()


def _fill(value: object, ids: dict[str, int]) -> object:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if value in ("{bank}", "{library}"):
        return ids[value[1:-1]]
    return value


def _call(c: FlaskClient, method: str, path: str, body: object, how: str | None,
          ids: dict[str, int]):
    url = path.format(**ids)
    if how in ("form", "upload"):
        data = {"csrf_token": csrf_of(c.get("/psychometrician/import").data), **(body or {})}
        return c.open(url, method=method, data=data,
                      content_type="multipart/form-data" if how == "upload" else None)
    if how == "json":
        return c.open(url, method=method, json=_fill(body, ids), headers=_csrf_header(c))
    return c.open(url, method=method)


def test_every_psychometrician_route_and_bank_operation_is_in_the_tenancy_matrix(app: Flask):
    rules = {(m, r.rule) for r in staff_rules(app)
             for m in r.methods - {"HEAD", "OPTIONS"}
             if "psychometrician" in getattr(app.view_functions[r.endpoint], "required_roles",
                                             ())}
    covered = {(m, p.split("?")[0].replace("{bank}", "<int:bank_id>")
                .replace("{job}", "<int:job_id>").replace("{run}", "<int:run_id>")
                .replace("{alarm}", "<int:alarm_id>")
                .replace("SRV-001", "<external_id>").replace("seed.png", "<name>")
                .replace("SRV-002", "<external_id>"))
               for _, m, p, *_ in PSYCHOMETRICIAN_OPERATIONS}
    covered |= {("GET", "/psychometrician/"), ("GET", "/psychometrician/import"),
                ("GET", "/psychometrician/calibrations"), ("GET", "/api/v1/banks"),
                ("POST", "/api/v1/banks"), ("GET", "/api/v1/assessments")}
    # session replays are scoped by the session's organisation: in ROUTES above
    covered |= {("GET", "/psychometrician/sessions"),
                ("GET", "/psychometrician/sessions/<int:session_id>/replay")}
    assert rules == covered, rules ^ covered


@pytest.mark.parametrize(("name", "method", "path", "body", "how", "own", "library", "private"),
                         PSYCHOMETRICIAN_OPERATIONS, ids=[o[0] for o in PSYCHOMETRICIAN_OPERATIONS])
def test_tenancy_matrix(site: Site, app: Flask, staff_client: Callable[[str], FlaskClient],
                        name, method, path, body, how, own, library, private) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    clients = {org: staff_client(PSY[org]) for org in ("demo", "other")}
    if name == "item image":
        for org in ("demo", "other"):
            _seed_image(site, site.bank_id(org))
    for target, actor in (("demo", "other"), ("other", "demo"), ("demo", "demo"),
                          ("other", "other")):
        ids = {"bank": site.bank_id(target), "job": _succeeded_job(site, target),
               "alarm": _open_alarm(site, target),
               "library": target == "demo",
               "run": site.sql("SELECT max(id) FROM calibration_runs WHERE bank_id = :b",
                               b=site.bank_id(target))[0][0]}
        before = _bank_state(site, ids["bank"])
        r = _call(clients[actor], method, path, body() if body else None, how, ids)
        # demo's bank is a library, the other organisation's is private
        want = own if actor == target else library if target == "demo" else private
        assert r.status_code == want, f"{actor} → {target}'s {name}: {r.status_code} " \
                                      f"{r.data[:300]!r}"
        if actor != target:
            after = _bank_state(site, ids["bank"])
            if name == "pooling consent" and want == 204:  # the actor's own consent row
                before, after = before[:4], after[:4]
            assert after == before, f"{actor} changed {target}'s bank through {name}"
            if want == 200 and r.is_json:  # reading a library: content only, no usage
                assert "responses" not in r.json and "jobs" not in r.json


def test_lists_show_only_the_organisations_banks_jobs_and_libraries(
        site: Site, staff_client: Callable[[str], FlaskClient]) -> None:
    jobs = {org: _succeeded_job(site, org) for org in ("demo", "other")}
    for org, other in (("demo", "other"), ("other", "demo")):
        c = staff_client(PSY[org])
        banks = {b["id"]: b for b in c.get("/api/v1/banks").json}
        assert site.bank_id(org) in banks and banks[site.bank_id(org)]["own"]
        if other == "other":
            assert site.bank_id("other") not in banks  # private: not even listed
        else:
            assert banks[site.bank_id("demo")]["library"] and not banks[site.bank_id("demo")][
                "own"]
        page = c.get("/psychometrician/calibrations").data
        assert f"/psychometrician/calibrations/{jobs[org]}".encode() in page
        assert f"/psychometrician/calibrations/{jobs[other]}".encode() not in page
        overview = c.get("/psychometrician/").data
        assert c.get(f"/psychometrician/?bank={site.bank_id(other)}").status_code == 404
        assert b"Item bank: " in overview


def _answer_one(site: Site, app: Flask, org: str) -> None:
    (token,) = site.invite(org=org)
    c = app.test_client()
    s = c.post("/api/v1/sessions", json={"invitation": token}).json
    item = s["pending_item"]
    r = c.post(f"/api/v1/sessions/{s['session_id']}/responses",
               json={"item_id": item["item_id"], "answer": item["options"][0]["id"]},
               headers={"Authorization": f"Bearer {s['token']}"})
    assert r.status_code == 200


def test_pooling_another_organisations_responses_needs_its_recorded_consent(
        site: Site, app: Flask, staff_client: Callable[[str], FlaskClient]) -> None:
    """The other organisation's candidates answer the demo's library; the demo's calibrations
    read them only while the other organisation consents (the log the job reads)."""
    from item_bank import repository as repo
    from item_bank.db import create_db_engine, transaction
    from item_bank.models import ItemBank

    for org in ("demo", "other"):
        _answer_one(site, app, org)
    org_of = dict(site.sql("SELECT public_id, o.slug FROM candidates c JOIN organisations o "
                           "ON o.id = c.organisation_id"))

    def pooled_candidates() -> set[str]:
        eng = create_db_engine(site.url)
        try:
            with transaction(eng, write=False) as db:
                bank = db.get(ItemBank, site.bank_id("demo"))
                log = repo.export_responses(db, bank_id=bank.id,
                                            organisation_ids=repo.pooled_organisations(db, bank))
                return {org_of[p] for p in log.person_ids}
        finally:
            eng.dispose()

    assert pooled_candidates() == {"demo"}
    other = staff_client("other_psychometrician")
    url = f"/api/v1/banks/{site.bank_id('demo')}/pooling-consent"
    assert other.post(url, json={"consent": True}, headers=_csrf_header(other)).status_code \
        == 204
    assert pooled_candidates() == {"demo", "other"}
    consent = site.sql("SELECT c.granted_by_id, u.email, c.revoked_at FROM "
                       "response_pooling_consents c JOIN staff_users u "
                       "ON u.id = c.granted_by_id WHERE c.bank_id = :b", b=site.bank_id("demo"))
    assert [(email, revoked) for _, email, revoked in consent] == \
        [("psychometrician@other.example", None)]
    assert other.post(url, json={"consent": False}, headers=_csrf_header(other)).status_code \
        == 204
    assert pooled_candidates() == {"demo"}
    # the withdrawal is recorded, not erased
    assert site.sql("SELECT COUNT(*) FROM response_pooling_consents WHERE bank_id = :b AND "
                    "revoked_at IS NOT NULL", b=site.bank_id("demo"))[0][0] == 1
    # the demo organisation cannot consent on the other's behalf, nor to its own bank
    demo = staff_client("psychometrician")
    assert demo.post(url, json={"consent": True}, headers=_csrf_header(demo)).status_code == 409
    assert demo.post(f"/api/v1/banks/{site.bank_id('other')}/pooling-consent",
                     json={"consent": True}, headers=_csrf_header(demo)).status_code == 404
