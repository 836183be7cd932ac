"""The answer hot path (issue 20): the per-worker session state cache and the one-statement
answer write keep every guarantee of the stored state."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine import CatState
from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.models import CandidateSession, Response, utcnow
from tests.web.conftest import Site
from web.db import database
from web.services import engines


def _answer_all(client: FlaskClient, token: str) -> tuple[int, dict]:
    body = client.post("/api/v1/sessions", json={"invitation": token}).json
    sid, auth = body["session_id"], {"Authorization": f"Bearer {body['token']}"}
    while body["status"] == "in_progress":
        it = body["pending_item"]
        r = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                        json={"item_id": it["item_id"], "answer": it["options"][1]["id"]})
        assert r.status_code == 200
        body = r.json
    return sid, body


def test_cached_states_are_the_stored_states(site: Site, client: FlaskClient):
    (token,) = site.invite()
    sid, _ = _answer_all(client, token)
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            db_key = engines._database_key(db)
            row = db.get(CandidateSession, sid)
            assert row is not None and row.state_version > 0
            cached = engines._states[(db_key, sid, row.state_version)]
            # the state this worker kept is exactly what the database holds
            assert cached.to_dict() == row.engine_state
            assert CatState.from_dict(row.engine_state).to_dict() == row.engine_state
            # a different stored value under the same key (a rebuilt database) is not reused
            other = dict(row.engine_state, seed=row.engine_state["seed"] + 1)
            got = engines.session_state(db, sid, row.state_version, other)
            assert got is not cached and got.seed == other["seed"]
            assert engines.session_state(db, sid, row.state_version,
                                         row.engine_state) is cached
    finally:
        eng.dispose()


def test_event_serialization_is_the_dataclass_form(site: Site, client: FlaskClient):
    (token,) = site.invite()
    sid, _ = _answer_all(client, token)
    rows = site.sql("SELECT engine_state FROM test_sessions WHERE id = :s", s=sid)
    stored = rows[0][0]
    state = CatState.from_dict(stored if isinstance(stored, dict) else json.loads(stored))
    assert state.to_dict()["events"] == [dataclasses.asdict(e) for e in state.events]


def test_answer_write_refuses_a_stale_state_version_and_stores_nothing(site: Site,
                                                                      client: FlaskClient):
    (token,) = site.invite()
    body = client.post("/api/v1/sessions", json={"invitation": token}).json
    sid = body["session_id"]
    eng = create_db_engine(site.url)
    item_pk = site.sql("SELECT id FROM items WHERE external_id = :e",
                       e=body["pending_item"]["item_id"])[0][0]
    try:
        with pytest.raises(ValueError, match="updated concurrently"), transaction(eng) as db:
            row = db.get(CandidateSession, sid)
            stale = row.state_version + 1  # someone else saved in between
            repo.record_answer(db, row, row.engine_state, stale, item_id=item_pk,
                               position=1, raw_answer="a", score=1, latency_ms=None,
                               answered_at=repo.utcnow(), parameter_version_id=None)
        with transaction(eng) as db:
            assert db.scalars(select(Response).where(Response.session_id == sid)).all() == []
            assert db.get(CandidateSession, sid).state_version == 0
    finally:
        eng.dispose()


def _start(client: FlaskClient, token: str) -> tuple[int, dict, dict]:
    body = client.post("/api/v1/sessions", json={"invitation": token}).json
    return body["session_id"], {"Authorization": f"Bearer {body['token']}"}, body


def _answer(client: FlaskClient, sid: int, auth: dict, body: dict, option: int = 0):
    it = body["pending_item"]
    return client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                       json={"item_id": it["item_id"], "answer": it["options"][option]["id"]})


def _stored(site: Site, sid: int) -> tuple[int, dict]:
    version, stored = site.sql("SELECT state_version, engine_state FROM test_sessions "
                               "WHERE id = :s", s=sid)[0]
    return version, stored if isinstance(stored, dict) else json.loads(stored)


def test_a_state_saved_by_another_worker_is_read_from_the_row(site: Site,
                                                               client: FlaskClient):
    """The worker kept the state it saved; another worker then saved the session (a newer
    version): the next answer reads the row, and the optimistic check passes on its version."""
    (token,) = site.invite()
    sid, auth, body = _start(client, token)
    body = _answer(client, sid, auth, body).json
    version, _ = _stored(site, sid)
    site.sql("UPDATE test_sessions SET state_version = state_version + 1 WHERE id = :s", s=sid)
    r = _answer(client, sid, auth, body)
    assert r.status_code == 200, r.data
    after, state = _stored(site, sid)
    assert after == version + 2 and len(state["events"]) == 2
    assert site.sql("SELECT count(*) FROM responses WHERE session_id = :s", s=sid)[0][0] == 2


def test_a_rebuilt_row_with_the_same_version_is_not_taken_for_the_kept_state(
        site: Site, client: FlaskClient):
    """Same id and version but another start time (a rebuilt database): the stored state is
    read, not the one this worker kept (here told apart by its seed)."""
    (token,) = site.invite()
    sid, auth, body = _start(client, token)
    body = _answer(client, sid, auth, body).json
    version, state = _stored(site, sid)
    other = dict(state, seed=state["seed"] + 1)
    site.sql("UPDATE test_sessions SET engine_state = :e, started_at = :t WHERE id = :s",
             e=json.dumps(other), t=repo.utcnow().replace(tzinfo=None), s=sid)
    r = _answer(client, sid, auth, body)
    assert r.status_code == 200, r.data
    after, saved = _stored(site, sid)
    assert after == version + 1 and saved["seed"] == other["seed"]
    assert CatState.from_dict(saved).to_dict() == saved


def test_state_json_is_the_json_of_its_dict_answer_after_answer(site: Site,
                                                                 client: FlaskClient):
    """`CatState.to_json_after` (the hot path's encoding of only what an answer adds) gives
    the text `json.dumps(to_dict())` gives, for every state of a session and from an
    unrelated previous state."""
    (token,) = site.invite()
    sid, _ = _answer_all(client, token)
    _, stored = _stored(site, sid)
    final = CatState.from_dict(stored)
    live = engines._cache[next(reversed(engines._cache))]
    state = live.engine.start(seed=final.seed)
    previous = None
    while not state.finished:
        assert state.to_json_after(previous) == json.dumps(state.to_dict())
        e = final.events[len(state.events)] if len(state.events) < len(final.events) else None
        previous, state = state, live.engine.record(state, state.pending or "",
                                                    e.response if e else 0)
    assert state.to_json_after(previous) == json.dumps(state.to_dict())
    assert final.to_json_after(state) == json.dumps(final.to_dict())


def test_the_answer_body_fast_path_accepts_only_what_the_schema_loads_the_same():
    """A body the fast path passes on is one `AnswerSchema` loads to the same dict; bodies it
    leaves to the schema are refused there (422 naming the field) or loaded alike."""
    from marshmallow import ValidationError

    from web.blueprints.api import AnswerSchema, _answer_body

    schema = AnswerSchema()
    bodies = [{"item_id": "q1", "answer": "a"}, {"item_id": "q1", "answer": ["a", "b"]},
              {"item_id": "q" * 64, "answer": "x" * 200}, {"item_id": "q1", "answer": "x" * 201},
              {"item_id": "q" * 65, "answer": "a"}, {"item_id": "", "answer": "a"},
              {"item_id": "q1", "answer": ""}, {"item_id": "q1", "answer": []},
              {"item_id": "q1", "answer": ["a"] * 21}, {"item_id": "q1", "answer": ["a" * 65]},
              {"item_id": "q1", "answer": [1]}, {"item_id": "q1", "answer": 3},
              {"item_id": "q1", "answer": None}, {"item_id": 1, "answer": "a"},
              {"item_id": "q1"}, {"answer": "a"}, {"item_id": "q1", "answer": "a", "x": 1},
              {"item_id": "q1", "answer": {"a": 1}}, ["q1", "a"], "q1", None, {}]
    fast = 0
    for body in bodies:
        quick = _answer_body(body)
        try:
            loaded = schema.load(body)  # type: ignore[arg-type]
        except ValidationError:
            assert quick is None, body
            continue
        assert quick is None or quick == loaded, body
        fast += quick is not None
    assert fast == 3


def test_a_worker_warms_up_the_engines_candidates_can_start(site: Site, app: Flask,
                                                            client: FlaskClient) -> None:
    """`proficio serve` builds, in each worker before it serves, the engines of the
    assessments with pending invitations: the first candidate's start then builds nothing."""
    (token,) = site.invite()
    engines._cache.clear()
    with app.app_context(), database().sessions() as db:
        done = engines.warm_up(db)
        assert done.assessments >= 1 and done.left == 0
        built = set(engines._cache)
        assert len(built) == done.assessments
        # nothing to start once every invitation has expired; nothing built over the budget
        later = utcnow() + dt.timedelta(days=36500)
        none = engines.warm_up(db, now=later)
        assert (none.assessments, none.left) == (0, 0)
        over = engines.warm_up(db, budget_s=-1)
        assert over.assessments == 0 and over.left == done.assessments
    r = client.post("/api/v1/sessions", json={"invitation": token})
    assert r.status_code == 201, r.data
    assert set(engines._cache) == built


@pytest.mark.parametrize("deadline", [None, dt.datetime(2027, 3, 1, 9, 30, 15),
                                      dt.datetime(2027, 3, 1, 9, 30, 15, 250000, tzinfo=dt.UTC)])
def test_session_bodies_are_the_schema_dump(app: Flask, deadline):
    """The candidate's session bodies are built without a schema dump; they are exactly what
    `SessionSchema` dumps (the documented contract), timed or not, with and without a
    pending item's options and images."""
    from web.blueprints.api import SessionSchema, _session_json, _session_response
    from web.services.candidate import PendingItem, SessionView

    pending = PendingItem("API-017", "Which **verb**?", (("a", "GET"), ("b", "POST")), "single",
                          (("diagram.png", "a diagram"),))
    views = [SessionView(7, "in_progress", pending, 3, 40, deadline, token="t" * 32),
             SessionView(7, "completed", None, 40, 40, deadline)]
    with app.test_request_context():
        for view in views:
            response = _session_response(view, 201)
            assert response.status_code == 201
            assert response.get_json() == json.loads(json.dumps(
                SessionSchema().dump(_session_json(view))))
