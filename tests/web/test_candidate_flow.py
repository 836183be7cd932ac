"""The candidate flow through the real app and database: pages, API, resume, refusals."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.web.conftest import Site, csrf_of, expire_deadline

ITEM = re.compile(rb'name="item_id" value="([^"]+)"')
OPTION = re.compile(rb'name="answer" id="opt-[^"]+" value="([^"]+)"')


def start(client: FlaskClient, token: str) -> str:
    page = client.get(f"/t/{token}")
    assert page.status_code == 200
    assert b"adaptive test" in page.data
    csrf = csrf_of(page.data)
    r = client.post(f"/t/{token}/start", data={"csrf_token": csrf})
    assert r.status_code == 302 and r.headers["Location"].endswith("/question")
    return csrf


def pending(client: FlaskClient, token: str) -> tuple[str, list[str], bytes]:
    page = client.get(f"/t/{token}/question")
    assert page.status_code == 200, page.data[:300]
    return ITEM.search(page.data).group(1).decode(), \
        [o.decode() for o in OPTION.findall(page.data)], page.data


def stored_answers(site: Site, token_session: int) -> list[tuple]:
    return site.sql("SELECT i.external_id, r.raw_answer, r.position FROM responses r "
                    "JOIN items i ON i.id = r.item_id WHERE r.session_id = :s "
                    "ORDER BY r.position", s=token_session)


def session_id_of(site: Site, token: str) -> int:
    from item_bank.security import hash_token

    rows = site.sql("SELECT s.id FROM test_sessions s JOIN invitations v ON v.id = "
                    "s.invitation_id WHERE v.token_hash = :h", h=hash_token(token))
    return int(rows[0][0])


def test_full_test_in_pages_commits_every_answer_and_scores_each_skill(site: Site,
                                                                       client: FlaskClient):
    (token,) = site.invite()
    csrf = start(client, token)
    sent = []
    while True:
        item, options, page = pending(client, token)
        assert re.search(rb"<h1[^>]*>Question \d+ <span class=\"progress\">of at most \d+", page)
        r = client.post(f"/t/{token}/answer",
                        data={"csrf_token": csrf, "item_id": item, "answer": options[0]})
        assert r.status_code == 302
        sent.append((item, options[0]))
        sid = session_id_of(site, token)
        assert [(i, a) for i, a, _ in stored_answers(site, sid)] == sent  # committed already
        if r.headers["Location"].endswith("/done"):
            break
    done = client.get(f"/t/{token}/done")
    assert done.status_code == 200 and b"completed the assessment" in done.data
    results = site.sql("SELECT count(*), min(n_items) FROM skill_results WHERE session_id = :s",
                       s=sid)
    assert results[0][0] == 8 and results[0][1] >= 2  # the default design: 2 per skill at least
    # a finished session cannot change, and its link keeps showing the finish page
    r = client.post(f"/t/{token}/answer",
                    data={"csrf_token": csrf, "item_id": sent[0][0], "answer": "b"})
    assert r.status_code == 409
    assert client.get(f"/t/{token}/question").headers["Location"].endswith("/done")


def test_resume_after_the_app_is_rebuilt_lands_on_the_pending_question(site: Site, app):
    (token,) = site.invite()
    first = site.app().test_client()
    csrf = start(first, token)
    for _ in range(3):
        item, options, _ = pending(first, token)
        first.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                               "answer": options[1]})
    item_before, options_before, _ = pending(first, token)
    # A new app object (a restart or another worker) and a new browser: same pending item.
    second = site.app().test_client()
    r = second.get(f"/t/{token}")
    assert r.status_code == 302 and r.headers["Location"].endswith("/question")
    item_after, options_after, _ = pending(second, token)
    assert (item_after, options_after) == (item_before, options_before)
    assert len(stored_answers(site, session_id_of(site, token))) == 3


def test_double_submit_is_recorded_once_and_wrong_item_is_refused(site: Site,
                                                                  client: FlaskClient):
    (token,) = site.invite()
    csrf = start(client, token)
    item, options, _ = pending(client, token)
    form = {"csrf_token": csrf, "item_id": item, "answer": options[2]}
    assert client.post(f"/t/{token}/answer", data=form).status_code == 302
    assert client.post(f"/t/{token}/answer", data=form).status_code == 302  # double click
    sid = session_id_of(site, token)
    assert [(i, a) for i, a, _ in stored_answers(site, sid)] == [(item, options[2])]
    next_item, _, _ = pending(client, token)
    assert next_item != item
    # the back button: the old question answered differently is refused, nothing stored
    r = client.post(f"/t/{token}/answer", data={**form, "answer": options[0]})
    assert r.status_code == 409 and b"not the current question" in r.data
    other = "SRV-001" if next_item != "SRV-001" else "SRV-002"
    r = client.post(f"/t/{token}/answer", data={**form, "item_id": other})
    assert r.status_code == 409
    r = client.post(f"/t/{token}/answer", data={**form, "item_id": next_item, "answer": "zz"})
    assert r.status_code == 422
    assert len(stored_answers(site, sid)) == 1


def test_form_without_csrf_token_is_rejected(site: Site, client: FlaskClient):
    (token,) = site.invite()
    start(client, token)
    item, options, _ = pending(client, token)
    r = client.post(f"/t/{token}/answer", data={"item_id": item, "answer": options[0]})
    assert r.status_code == 400
    assert stored_answers(site, session_id_of(site, token)) == []


def test_expired_and_revoked_and_unknown_invitations(site: Site, client: FlaskClient):
    import datetime as dt

    (expired,) = site.invite(expires_in=dt.timedelta(seconds=1))
    site.sql("UPDATE invitations SET expires_at = :t WHERE status = 'pending' AND "
             "expires_at < :limit", t=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
             limit=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert client.get(f"/t/{expired}").status_code == 410
    assert client.get("/t/not-a-real-token-at-all-000000000").status_code == 404
    r = client.post("/api/v1/sessions", json={"invitation": expired})
    assert r.status_code == 410 and r.json["message"]


def test_time_limit_is_enforced_by_the_server(site: Site, client: FlaskClient):
    (token,) = site.invite()
    csrf = start(client, token)
    item, options, _ = pending(client, token)
    client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                            "answer": options[0]})
    sid = session_id_of(site, token)
    item, options, _ = pending(client, token)
    expire_deadline(site, sid)
    r = client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                                "answer": options[0]})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/t/{token}/done")
    assert len(stored_answers(site, sid)) == 1  # the late answer was refused
    status = site.sql("SELECT status FROM test_sessions WHERE id = :s", s=sid)[0][0]
    assert status == "timed_out"
    scored = site.sql("SELECT sum(n_items) FROM skill_results WHERE session_id = :s", s=sid)
    assert scored[0][0] == 1  # scored on what was answered
    page = client.get(f"/t/{token}/done")
    assert b"<h1>Time is up</h1>" in page.data and b"time limit of the assessment has passed" \
        in page.data
    assert b"1 question in time" in page.data


def test_api_flow_with_bearer_token(site: Site, client: FlaskClient):
    (token,) = site.invite()
    r = client.post("/api/v1/sessions", json={"invitation": token})
    assert r.status_code == 201
    body = r.json
    sid, bearer = body["session_id"], body["token"]
    assert body["status"] == "in_progress" and body["position"] == 1
    assert set(body["pending_item"]) == {"item_id", "stem", "options", "interaction", "media"}
    auth = {"Authorization": f"Bearer {bearer}"}
    assert client.get(f"/api/v1/sessions/{sid}").status_code == 401
    assert client.get(f"/api/v1/sessions/{sid}", headers={"Authorization": "Bearer x" * 3}
                      ).status_code == 404
    got = client.get(f"/api/v1/sessions/{sid}", headers=auth).json
    assert got["pending_item"] == body["pending_item"] and got["token"] is None
    item = body["pending_item"]
    answer = {"item_id": item["item_id"], "answer": item["options"][0]["id"]}
    r1 = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)
    r2 = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)  # retry
    assert r1.status_code == r2.status_code == 200
    assert r1.json == r2.json and r1.json["answered"] == 1
    bad = client.post(f"/api/v1/sessions/{sid}/responses", json={"item_id": item["item_id"]},
                      headers=auth)
    assert bad.status_code == 422 and "answer" in str(bad.json["errors"])
    # resuming with the invitation rotates the token: the old one stops working
    again = client.post("/api/v1/sessions", json={"invitation": token}).json
    assert again["session_id"] == sid and again["pending_item"] == r1.json["pending_item"]
    assert client.get(f"/api/v1/sessions/{sid}", headers=auth).status_code == 404
    auth = {"Authorization": f"Bearer {again['token']}"}
    # a token opens its own session only
    (other,) = site.invite()
    other_sid = client.post("/api/v1/sessions", json={"invitation": other}).json["session_id"]
    assert client.get(f"/api/v1/sessions/{other_sid}", headers=auth).status_code == 404
    state = again
    while state["status"] == "in_progress":
        it = state["pending_item"]
        r = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                        json={"item_id": it["item_id"], "answer": it["options"][-1]["id"]})
        assert r.status_code == 200
        state = r.json
    assert state["status"] == "completed" and state["pending_item"] is None
    late = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                       json={"item_id": "SRV-001", "answer": "a"})
    assert late.status_code == 409


def test_multidimensional_and_shadow_blueprints_run_through_the_same_api(site: Site, client):
    """Correlated skills (multidimensional scoring) and shadow tests need no change in how a
    candidate takes the test: the same endpoints, the same integrity."""
    import json

    from item_bank.db import create_db_engine, transaction
    from item_bank.models import Assessment

    eng = create_db_engine(site.url)
    with transaction(eng) as db:
        demo = db.query(Assessment).filter(Assessment.slug == "backend-engineer").one()
        base = dict(demo.blueprint)
        skills = [s["skill"] for s in base["skills"]]
        corr = [[1.0 if i == j else 0.5 for j in range(len(skills))] for i in range(len(skills))]
        variants = {"mcat": {**base, "correlations": corr},
                    # shadow tests are fixed-length: no composite stopping rule
                    "shadow": {**base, "selector": {"name": "shadow"}, "stopping": [],
                               "exposure": {"name": "none"}}}
        for slug, blueprint in variants.items():
            if db.query(Assessment).filter(Assessment.slug == slug).first() is None:
                db.add(Assessment(organisation_id=demo.organisation_id, bank_id=demo.bank_id,
                                  slug=slug, name=slug,
                                  blueprint=json.loads(json.dumps(blueprint))))
    eng.dispose()
    for slug in ("mcat", "shadow"):
        eng = create_db_engine(site.url)
        with transaction(eng) as db:
            from item_bank import repository as repo

            target = db.query(Assessment).filter(Assessment.slug == slug).one()
            token = repo.create_invitations(db, target, 1)[0].token
        eng.dispose()
        r = client.post("/api/v1/sessions", json={"invitation": token})
        assert r.status_code == 201, r.json
        state, sid = r.json, r.json["session_id"]
        auth = {"Authorization": f"Bearer {r.json['token']}"}
        seen = []
        while state["status"] == "in_progress":
            it = state["pending_item"]
            seen.append(it["item_id"])
            state = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                                json={"item_id": it["item_id"],
                                      "answer": it["options"][0]["id"]}).json
        assert state["status"] == "completed" and len(seen) == len(set(seen))
        n_results = site.sql("SELECT count(*) FROM skill_results WHERE session_id = :s", s=sid)
        assert n_results[0][0] == len(skills), slug


def test_revoked_mid_test_closes_the_session_and_says_so(site: Site, client: FlaskClient,
                                                         staff_client):
    (token,) = site.invite()
    csrf = start(client, token)
    item, options, _ = pending(client, token)
    client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                            "answer": options[0]})
    sid = session_id_of(site, token)
    invitation = site.sql("SELECT invitation_id FROM test_sessions WHERE id = :s", s=sid)[0][0]
    recruiter = staff_client("recruiter")
    page = recruiter.get("/recruiter/")
    r = recruiter.post(f"/recruiter/invitations/{invitation}/revoke",
                       data={"csrf_token": csrf_of(page.data)})
    assert r.status_code == 302
    assert client.get(f"/t/{token}/question").headers["Location"].endswith("/done")
    assert b"withdrawn" in client.get(f"/t/{token}/done").data
    late = client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": "SRV-001",
                                                   "answer": "a"})
    assert late.status_code == 409
    assert len(stored_answers(site, sid)) == 1


def test_welcome_page_names_the_stacks_the_questions_assume(site: Site, client: FlaskClient):
    """The demo assessment covers every skill, so it names every stack the tagged items assume;
    an assessment that excludes stacks (blueprint ``exclude_tags``) no longer names them, and one
    whose items are all stack-neutral says so."""
    import json

    from engine import Blueprint
    from item_bank import repository as repo
    from item_bank.db import create_db_engine, transaction
    from item_bank.models import Assessment
    from item_bank.stacks import excluding_stacks

    (token,) = site.invite()
    page = client.get(f"/t/{token}").data
    assert b"Some assume working knowledge of: <strong>AWS, Kubernetes, PostgreSQL, Python, " \
           b"Terraform</strong>" in page
    eng = create_db_engine(site.url)
    tokens = {}
    with transaction(eng) as db:
        demo = db.query(Assessment).filter(Assessment.slug == "backend-engineer").one()
        base = Blueprint.from_dict(demo.blueprint)
        api_only = Blueprint.from_dict({**demo.blueprint, "skills": [
            s for s in demo.blueprint["skills"] if s["skill"] == "api_design"]})
        variants = {"no-python-aws": excluding_stacks(base, ["python", "aws"]),
                    "api-only": api_only}
        for slug, bp in variants.items():
            target = db.query(Assessment).filter(Assessment.slug == slug).first()
            if target is None:
                target = Assessment(organisation_id=demo.organisation_id, bank_id=demo.bank_id,
                                    slug=slug, name=slug,
                                    blueprint=json.loads(json.dumps(bp.to_dict())))
                db.add(target)
                db.flush()
            tokens[slug] = repo.create_invitations(db, target, 1)[0].token
    eng.dispose()
    page = client.get(f"/t/{tokens['no-python-aws']}").data
    assert b"<strong>Kubernetes, PostgreSQL, Terraform</strong>" in page
    page = client.get(f"/t/{tokens['api-only']}").data
    assert b"do not assume a particular programming language" in page
