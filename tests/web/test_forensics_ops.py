"""Test security in operations (issue 17): the compromised-item monitor (``proficio monitor``
and the job after completed sessions), the psychometrician's watch list with its one-step
decisions, and the integrity notes on the recruiter's report.

Traffic is simulated into a real demo database of its own (finished sessions with answers and
latencies, written as the candidate flow writes them), so the shared site's data stay as the
other tests expect them: abilities N(0, 1), answers under the items' current (3PL) parameters,
lognormal times (usual time about 40 s). From the middle of the traffic on, half of the
candidates know one item (the "leak"): they answer it correctly in a third of its usual time.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from item_bank import repository as repo
from item_bank.db import create_db_engine, transaction
from item_bank.forensics_models import BankMonitor, ItemAlarm
from item_bank.models import (
    Assessment,
    Candidate,
    CandidateSession,
    Invitation,
    Item,
    Response,
)
from item_bank.security import hash_token
from tests.web.conftest import WEB_BACKENDS, Site, csrf_of, login, new_site
from web.cli import main
from web.services import forensics


@dataclass(frozen=True)
class Traffic:
    leaked: str
    skill: str
    leak_from: dt.datetime
    sessions: tuple[int, ...]


def simulate_traffic(site: Site, n_sessions: int, *, leaked: str | None = None,
                     leak_share: float = 0.5, items_per_session: int = 12, seed: int = 1,
                     org: str = "demo", start: dt.datetime | None = None,
                     rapid_share: float = 0.0) -> Traffic:
    """Finished sessions of ``org``'s first assessment, one skill each, every one answering
    ``leaked`` (default: an operational item of middling difficulty) among its items."""
    rng = np.random.default_rng(seed)
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            assessment = next(a for a in db.scalars(select(Assessment).order_by(Assessment.id))
                              if a.organisation.slug == org)
            loaded = repo.load_bank(db, bank_id=assessment.bank_id)
            metas = {m.external_id: m for m in loaded.items}
            params = {p.item_id: p for p in loaded.bank.params()}
            operational = [e for e, m in metas.items() if m.status == "operational"
                           and params[e].model in ("2pl", "3pl")]
            if leaked is None:
                leaked = min(operational, key=lambda e: abs(params[e].b - 0.3))
            skill = params[leaked].skill
            pool = [e for e in operational if params[e].skill == skill and e != leaked]
            pks = dict(db.execute(select(Item.external_id, Item.id)
                                  .where(Item.bank_id == assessment.bank_id)).all())
            beta = {e: float(np.log(40.0) + 0.3 * np.sin(k)) for k, e in enumerate(sorted(pks))}
            t0 = start or dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
            leak_from = t0 + dt.timedelta(hours=n_sessions // 2)
            made = []
            for k in range(n_sessions):
                at = t0 + dt.timedelta(hours=k)
                theta, tau = rng.normal(), rng.normal(0, 0.3)
                chosen = [leaked, *rng.choice(pool, items_per_session - 1, replace=False)]
                rng.shuffle(chosen)
                knows = leakage = at >= leak_from and rng.random() < leak_share
                cand = Candidate(public_id=uuid.uuid4().hex,
                                 organisation_id=assessment.organisation_id,
                                 name=f"Simulated {k}")
                db.add(cand)
                db.flush()
                inv = Invitation(assessment_id=assessment.id, candidate_id=cand.id,
                                 token_hash=hash_token(uuid.uuid4().hex), status="completed",
                                 expires_at=at + dt.timedelta(days=14), created_at=at)
                db.add(inv)
                db.flush()
                row = CandidateSession(invitation_id=inv.id, candidate_id=cand.id,
                                       assessment_id=assessment.id, status="completed",
                                       started_at=at, finished_at=at + dt.timedelta(minutes=20),
                                       engine_state={}, blueprint=dict(assessment.blueprint))
                db.add(row)
                db.flush()
                made.append(row.id)
                for pos, ext in enumerate(chosen, start=1):
                    p = params[ext]
                    c = p.c or 0.0
                    prob = c + (1.0 - c) / (1.0 + np.exp(-p.a * (theta - p.b)))
                    correct = rng.random() < prob
                    log_t = beta[ext] - tau + rng.normal() / 2.0
                    if knows and ext == leaked and leakage:
                        correct, log_t = True, log_t - np.log(3.0)
                    if rapid_share and rng.random() < rapid_share:
                        correct, log_t = rng.random() < 0.25, np.log(rng.uniform(1.0, 3.0))
                    db.add(Response(session_id=row.id, item_id=pks[ext], position=pos,
                                    raw_answer="a", score=int(correct),
                                    latency_ms=int(1000 * np.exp(log_t)),
                                    parameter_version_id=metas[ext].parameter_version_id,
                                    answered_at=at + dt.timedelta(minutes=pos)))
            return Traffic(leaked, skill, leak_from, tuple(made))
    finally:
        eng.dispose()


def _json(value: object) -> object:
    """A JSON column's value (SQLite returns its text, PostgreSQL the parsed value)."""
    return json.loads(value) if isinstance(value, str) else value


def _utc(value: object) -> dt.datetime:
    t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


@pytest.fixture(scope="module", params=WEB_BACKENDS)
def fsite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Site]:
    """A demo database of its own with 240 simulated sessions; item leaked from the 120th."""
    with new_site(request.param, Path(tmp_path_factory.mktemp("forensics"))) as made:
        made.traffic = simulate_traffic(made, 240)  # type: ignore[attr-defined]
        yield made


@pytest.fixture
def fapp(fsite: Site) -> Iterator[Flask]:
    yield fsite.app()
    fsite.close_apps()


def _client(app: Flask, site: Site, who: str) -> FlaskClient:
    c = app.test_client()
    if who == "other_psychometrician":
        login(c, "psychometrician@other.example", site.other_org_password)
    else:
        cred = site.info.credentials(who)
        login(c, cred.email, cred.password)
    return c


def _alarms(site: Site) -> list[tuple]:
    return site.sql("SELECT i.external_id, a.status, a.started_at, a.n_since_start "
                    "FROM item_alarms a JOIN items i ON i.id = a.item_id ORDER BY a.id")


def test_proficio_monitor_flags_the_leaked_item_dated_after_the_leak(fsite: Site, capsys):
    traffic = fsite.traffic  # type: ignore[attr-defined]
    assert main(["monitor", "--org", "demo", "--bank", fsite.sql(
        "SELECT slug FROM item_banks WHERE id = :b", b=fsite.bank_id())[0][0],
        "--database-url", fsite.url]) == 0
    out = capsys.readouterr().out
    assert f"newly flagged: {traffic.leaked}" in out
    alarms = _alarms(fsite)
    assert [a[0] for a in alarms] == [traffic.leaked]  # and no clean item
    started = _utc(alarms[0][2])
    # the change is dated at (or after) the leak, not before it
    assert traffic.leak_from - dt.timedelta(hours=2) <= started
    assert started <= traffic.leak_from + dt.timedelta(days=5)
    fit = fsite.sql("SELECT rt_fit FROM bank_monitors WHERE bank_id = :b", b=fsite.bank_id())
    assert fit and fit[0][0] is not None  # the bank's response-time model is stored
    # running again keeps one alarm per item (updated, not duplicated)
    assert main(["monitor", "--database-url", fsite.url]) == 0
    assert [a[0] for a in _alarms(fsite)] == [traffic.leaked]


def test_watch_list_shows_the_evidence_and_hold_removes_the_item_from_the_pool(
        fsite: Site, fapp: Flask):
    from web.services.engines import live_assessment

    traffic = fsite.traffic  # type: ignore[attr-defined]
    eng = create_db_engine(fsite.url)
    try:
        with transaction(eng) as db:
            forensics.monitor_bank(db, fsite.bank_id())
    finally:
        eng.dispose()
    c = _client(fapp, fsite, "psychometrician")
    page = c.get("/psychometrician/watch-list").data.decode()
    assert traffic.leaked in page and "Change began" in page
    assert "Fast and correct before" in page and "%" in page
    alarm_id = fsite.sql("SELECT id FROM item_alarms")[0][0]
    # no CSRF token: refused, nothing changes
    fapp.config["WTF_CSRF_ENABLED"] = True
    assert c.post(f"/psychometrician/alarms/{alarm_id}", data={"action": "hold"}
                  ).status_code == 400
    assert fsite.sql("SELECT status FROM item_alarms")[0][0] == "open"
    r = c.post(f"/psychometrician/alarms/{alarm_id}",
               data={"action": "hold", "csrf_token": csrf_of(page.encode())})
    assert r.status_code == 302
    assert fsite.sql("SELECT status FROM item_alarms")[0][0] == "held"
    assert fsite.sql("SELECT status FROM items WHERE external_id = :e AND bank_id = :b",
                     e=traffic.leaked, b=fsite.bank_id())[0][0] == "held"
    audit = fsite.sql("SELECT action, target FROM audit_events ORDER BY id DESC LIMIT 1")
    assert audit == [("item_alarm.held", f"item {traffic.leaked}")]
    # the next session's pool no longer has the item
    (token,) = fsite.invite()
    s = fapp.test_client().post("/api/v1/sessions", json={"invitation": token}).json
    with fapp.app_context():
        from web.db import get_db

        db = get_db()
        row = db.get(CandidateSession, s["session_id"])
        live = live_assessment(db, row.assessment_id, row.blueprint)
        assert traffic.leaked not in live.engine.pool.bank.item_ids
        assert s["pending_item"]["item_id"] != traffic.leaked
    # deciding again is refused with a message (the alarm is no longer open)
    again = c.post(f"/psychometrician/alarms/{alarm_id}", follow_redirects=True,
                   data={"action": "dismiss", "csrf_token": csrf_of(page.encode())})
    assert b"already decided" in again.data
    fsite.sql("UPDATE items SET status = 'operational' WHERE external_id = :e",
              e=traffic.leaked)


def test_another_organisation_cannot_see_or_decide_an_alarm(fsite: Site, fapp: Flask):
    eng = create_db_engine(fsite.url)
    try:
        with transaction(eng) as db:
            forensics.monitor_bank(db, fsite.bank_id())
            bank_id = fsite.bank_id()
            item = db.scalar(select(Item).where(Item.bank_id == bank_id))
            alarm = ItemAlarm(bank_id=bank_id, item_id=item.id, status="open", statistic=20.0,
                              threshold=14.0, n_responses=100, n_since_start=30,
                              correct_since_start=28, expected_correct_since_start=14.0)
            db.add(alarm)
            db.flush()
            alarm_id, ext = alarm.id, item.external_id
    finally:
        eng.dispose()
    other = _client(fapp, fsite, "other_psychometrician")
    page = other.get("/psychometrician/watch-list").data.decode()
    assert ext not in page
    fapp.config["WTF_CSRF_ENABLED"] = True
    token = csrf_of(page.encode())
    for action in ("hold", "retire", "dismiss"):
        r = other.post(f"/psychometrician/alarms/{alarm_id}",
                       data={"action": action, "csrf_token": token})
        assert r.status_code == 404
    assert fsite.sql("SELECT status FROM item_alarms WHERE id = :i", i=alarm_id) == [("open",)]
    assert fsite.sql("SELECT status FROM items WHERE id = :i", i=item.id)[0][0] != "held"
    # the other organisation's own bank: not the demo's through ?bank=
    assert other.get(f"/psychometrician/watch-list?bank={bank_id}").status_code == 404
    # the owner dismisses it (clean-up), with a bad action refused first
    own = _client(fapp, fsite, "psychometrician")
    token = csrf_of(own.get("/psychometrician/watch-list").data)
    bad = own.post(f"/psychometrician/alarms/{alarm_id}", follow_redirects=True,
                   data={"action": "delete", "csrf_token": token})
    assert b"field &#39;action&#39;" in bad.data or b"field 'action'" in bad.data
    assert own.post(f"/psychometrician/alarms/{alarm_id}",
                    data={"action": "dismiss", "csrf_token": token}).status_code == 302
    assert fsite.sql("SELECT status FROM item_alarms WHERE id = :i", i=alarm_id) == [
        ("dismissed",)]


def test_completed_sessions_queue_one_monitor_job_per_bank(fsite: Site, tmp_path):
    """With the flag on, completing sessions marks the bank's monitor pending and queues one
    job (not one per session); the job runs the same monitor. Off (the test default), nothing
    is queued."""
    from web.jobs import _run_monitor, queue

    bank_id = fsite.bank_id()
    huey = queue().huey

    def monitor_tasks() -> list:
        return [t for t in huey.pending() if t.name == "monitor"
                and not huey.is_revoked(t) and t.args[0] == bank_id]

    fsite.sql("UPDATE bank_monitors SET pending = false WHERE bank_id = :b", b=bank_id)

    def finish_sessions(app: Flask, n: int) -> None:
        for token in fsite.invite(n):
            c = app.test_client()
            s = c.post("/api/v1/sessions", json={"invitation": token}).json
            while s.get("pending_item"):
                item = s["pending_item"]
                s = c.post(f"/api/v1/sessions/{s['session_id']}/responses",
                           json={"item_id": item["item_id"],
                                 "answer": item["options"][0]["id"]},
                           headers={"Authorization": f"Bearer {s['token']}"}).json \
                    | {"token": s["token"], "session_id": s["session_id"]}
            assert s["status"] == "completed", s

    finish_sessions(fsite.app(), 1)  # TESTING: off
    assert monitor_tasks() == []
    on = fsite.app(PROFICIO_MONITOR_AFTER_SESSION=True)
    finish_sessions(on, 2)
    pending = monitor_tasks()
    assert len(pending) == 1, [t.name for t in huey.pending()]
    assert fsite.sql("SELECT pending FROM bank_monitors WHERE bank_id = :b",
                     b=bank_id)[0][0] in (1, True)
    fsite.sql("DELETE FROM item_alarms")
    _run_monitor(*pending[0].args)  # what the worker runs
    huey.revoke_by_id(pending[0].id)  # run here: no later consumer runs it again
    assert fsite.sql("SELECT pending FROM bank_monitors WHERE bank_id = :b",
                     b=bank_id)[0][0] in (0, False)
    assert [a[0] for a in _alarms(fsite)] == [fsite.traffic.leaked]  # type: ignore[attr-defined]
    # the bank's monitor has just run: the next completed session's job waits for the interval
    # (one run then covers every session completed meanwhile), not a run per completion
    finish_sessions(on, 2)
    later = monitor_tasks() + [t for t in huey.scheduled() if t.name == "monitor"
                               and t.args[0] == bank_id]
    for t in later:  # whatever is asserted below, no later test's consumer runs them
        huey.revoke_by_id(t.id)
    assert len(later) == 1 and later[0].eta is not None, later
    ran_at = fsite.sql("SELECT ran_at FROM bank_monitors WHERE bank_id = :b", b=bank_id)[0][0]
    ran_at = ran_at if isinstance(ran_at, dt.datetime) else dt.datetime.fromisoformat(ran_at)
    ran_at = ran_at if ran_at.tzinfo else ran_at.replace(tzinfo=dt.UTC)
    eta = later[0].eta if later[0].eta.tzinfo else later[0].eta.replace(tzinfo=dt.UTC)
    due = ran_at + forensics.MONITOR_MIN_INTERVAL
    assert abs((eta - due).total_seconds()) < 30, (eta, due)
    fsite.close_apps()


def test_integrity_note_for_rapid_guessing_not_for_an_honest_session(fsite: Site, fapp: Flask):
    eng = create_db_engine(fsite.url)
    try:
        with transaction(eng) as db:
            forensics.monitor_bank(db, fsite.bank_id())  # the bank's response-time fit
    finally:
        eng.dispose()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    honest = simulate_traffic(fsite, 1, seed=11, start=start, leak_share=0.0)
    rapid = simulate_traffic(fsite, 1, seed=12, start=start, leak_share=0.0, rapid_share=0.5)
    c = _client(fapp, fsite, "recruiter")
    page = c.get(f"/recruiter/sessions/{honest.sessions[0]}").data.decode()
    assert "Integrity notes" not in page
    ((n_timed, notes),) = fsite.sql("SELECT n_timed, notes FROM session_integrity WHERE "
                                    "session_id = :s", s=honest.sessions[0])
    assert (n_timed, _json(notes)) == (12, [])  # judged, with times, no note
    page = c.get(f"/recruiter/sessions/{rapid.sessions[0]}").data.decode()
    assert "much faster than anyone usually needs" in page
    # 12 answers: judged by the entry of the nearest studied length at or above, 15 answers,
    # and the note quotes the false-positive rate measured for that entry
    table = {t.n_answers: t for t in forensics.THRESHOLDS_BY_LENGTH}
    used = table[15]
    assert used.false_positive_rate != table[10].false_positive_rate, \
        "the 10- and 15-answer entries quote the same rate: this test cannot tell them apart"
    assert f"{100 * used.false_positive_rate:.2f} %" in page
    assert f"{100 * table[10].false_positive_rate:.2f} %" not in page
    assert "15-question adaptive tests" in page and "a test of 12 answers" in page
    api = c.get(f"/api/v1/reports/{rapid.sessions[0]}").json
    assert [n["kind"] for n in api["integrity_notes"]][:1] == ["rapid_guessing"]
    assert {(n["false_positive_rate"], n["measured_n_answers"])
            for n in api["integrity_notes"]} == {(used.false_positive_rate, 15)}
    assert c.get(f"/api/v1/reports/{honest.sessions[0]}").json["integrity_notes"] == []
    stored = fsite.sql("SELECT n_answers, rapid, notes FROM session_integrity "
                       "WHERE session_id = :s", s=rapid.sessions[0])
    assert stored and stored[0][0] == 12 and stored[0][1] >= 2
    notes = _json(stored[0][2])
    assert isinstance(notes, list) and {n["measured_n_answers"] for n in notes} == {15}
    with fapp.app_context():
        from web.db import get_db

        assert get_db().get(BankMonitor, fsite.bank_id()) is not None


def test_integrity_notes_only_for_test_lengths_whose_rate_was_measured(fsite: Site,
                                                                         fapp: Flask):
    """A session shorter than the shortest studied length gets no note, rapid guesses or
    not (no false-positive rate was measured for it); its evidence is still stored."""
    eng = create_db_engine(fsite.url)
    try:
        with transaction(eng) as db:
            forensics.monitor_bank(db, fsite.bank_id())
    finally:
        eng.dispose()
    shortest = forensics.THRESHOLDS_BY_LENGTH[0].n_answers
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    short = simulate_traffic(fsite, 1, seed=12, start=start, leak_share=0.0, rapid_share=0.6,
                             items_per_session=shortest - 2)
    just = simulate_traffic(fsite, 1, seed=12, start=start, leak_share=0.0, rapid_share=0.6,
                            items_per_session=shortest)
    c = _client(fapp, fsite, "recruiter")
    page = c.get(f"/recruiter/sessions/{short.sessions[0]}").data.decode()
    assert "much faster than anyone usually needs" not in page
    # the report says why there is no note rather than looking like a clean result
    assert "No integrity notes were computed" in page and \
        f"tests of\n{shortest} to {forensics.THRESHOLDS_BY_LENGTH[-1].n_answers} scored " \
        f"answers, and this test had {shortest - 2}." in page
    page = c.get(f"/recruiter/sessions/{just.sessions[0]}").data.decode()
    assert "much faster than anyone usually needs" in page
    assert "No integrity notes were computed" not in page
    rows = dict((sid, (n, rapid, _json(notes))) for sid, n, rapid, notes in fsite.sql(
        "SELECT session_id, n_answers, rapid, notes FROM session_integrity "
        "WHERE session_id IN (:a, :b)", a=short.sessions[0], b=just.sessions[0]))
    n, rapid, notes = rows[short.sessions[0]]
    assert (n, notes) == (shortest - 2, []) and rapid >= 2
    n, rapid, notes = rows[just.sessions[0]]
    assert n == shortest and rapid >= 2
    assert isinstance(notes, list) and {x["measured_n_answers"] for x in notes} == {shortest}


def test_integrity_notes_stored_before_per_length_thresholds_keep_their_rate(fsite: Site,
                                                                             fapp: Flask):
    """A row stored with the one 30-item set of thresholds (no measured_n_answers) is shown
    with the rate it was stored with, as measured on 30-question tests."""
    from item_bank.forensics_models import SessionIntegrity

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    old = simulate_traffic(fsite, 1, seed=13, start=start, leak_share=0.0)
    eng = create_db_engine(fsite.url)
    try:
        with transaction(eng) as db:
            db.add(SessionIntegrity(
                session_id=old.sessions[0], n_answers=12, n_timed=12, rapid=3,
                preknowledge_llr=0.0, lz_star=None,
                notes=[{"kind": "rapid_guessing", "text": "3 of 12 answers were much faster "
                        "than anyone usually needs to read the question.",
                        "false_positive_rate": 0.0085}]))
    finally:
        eng.dispose()
    c = _client(fapp, fsite, "recruiter")
    page = c.get(f"/recruiter/sessions/{old.sessions[0]}").data.decode()
    assert "0.85 %" in page and "30-question adaptive tests" in page
    (note,) = c.get(f"/api/v1/reports/{old.sessions[0]}").json["integrity_notes"]
    assert (note["false_positive_rate"], note["measured_n_answers"]) == (0.0085, 30)


def test_the_products_table_is_one_entry_per_studied_length():
    """`THRESHOLDS_BY_LENGTH` as the per-length study prints it: lengths increasing, each rate
    measured on 10,000 fresh honest simulees, shortest 10 and longest 100 answers (the
    documented range of sessions that get notes)."""
    from calibration.forensics import thresholds_for

    table = forensics.THRESHOLDS_BY_LENGTH
    lengths = [t.n_answers for t in table]
    assert lengths == sorted(set(lengths)) and (lengths[0], lengths[-1]) == (10, 100)
    assert all(t.n_simulated == 10_000 and 0 < t.false_positive_rate < 0.05 for t in table)
    assert thresholds_for(9, table) is None and thresholds_for(101, table) is None


def _invite(site: Site, slug: str, email: str | None = None) -> str:
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            target = db.scalar(select(Assessment).where(Assessment.slug == slug))
            issued = repo.create_invitations(db, target, 1)[0]
            if email is not None:
                db.scalar(select(Candidate).where(
                    Candidate.public_id == issued.candidate_public_id)).email = email
            return issued.token
    finally:
        eng.dispose()


def _take(site: Site, app: Flask, token: str, *, rapid_first: int = 0,
          seconds: float = 30.0, midway: Callable[[], None] | None = None) -> int:
    """Answer a whole session through the API (always the first option); the first
    ``rapid_first`` answers at once, every other one ``seconds`` after its item was served
    (the server measures latencies from when the item was served). ``midway`` runs once, when
    the rapid answers have been given."""
    c = app.test_client()
    s = c.post("/api/v1/sessions", json={"invitation": token}).json
    sid, bearer, n = s["session_id"], s["token"], 0
    while s.get("pending_item"):
        n += 1
        if n == rapid_first + 1 and midway is not None:
            midway()
        if n > rapid_first:
            site.sql("UPDATE test_sessions SET item_served_at = :t WHERE id = :i", i=sid,
                     t=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds))
        item = s["pending_item"]
        s = c.post(f"/api/v1/sessions/{sid}/responses",
                   json={"item_id": item["item_id"], "answer": item["options"][0]["id"]},
                   headers={"Authorization": f"Bearer {bearer}"}).json
    assert s["status"] == "completed", s
    return sid


def _fit_times(site: Site) -> None:
    eng = create_db_engine(site.url)
    try:
        with transaction(eng) as db:
            forensics.monitor_bank(db, site.bank_id())
    finally:
        eng.dispose()


def test_effort_moderated_scoring_leaves_rapid_guesses_out_states_it_and_replays(
        fsite: Site, fapp: Flask, tmp_path, capsys):

    from engine import Blueprint, CatState, make_engine
    from item_bank.pool import load_item_pool

    _fit_times(fsite)
    blueprint = tmp_path / "bp.json"
    skill = fsite.traffic.skill  # type: ignore[attr-defined]
    blueprint.write_text(json.dumps({"skills": [{"skill": skill}], "min_items": 8,
                                     "max_items": 8, "se_target": None}))
    assert main(["assessment", "create", "--org", "demo", "--slug", "moderated", "--name",
                 "Moderated", "--no-check", "--blueprint", str(blueprint),
                 "--effort-moderated", "--database-url", fsite.url]) == 0
    assert _json(fsite.sql("SELECT security FROM assessments WHERE slug = 'moderated'")[0][0]
                 ) == {"effort_moderated": True, "retake_window_days": 180}
    sid = _take(fsite, fapp, _invite(fsite, "moderated"), rapid_first=3)
    latencies = [ms for (ms,) in fsite.sql("SELECT latency_ms FROM responses WHERE "
                                           "session_id = :s ORDER BY position", s=sid)]
    assert all(ms < 1000 for ms in latencies[:3]) and all(ms >= 29_000 for ms in latencies[3:])
    assert _json(fsite.sql("SELECT unscored_positions FROM test_sessions WHERE id = :s",
                           s=sid)[0][0]) == [1, 2, 3]
    stored = dict(fsite.sql("SELECT k.slug, r.n_items FROM skill_results r JOIN skills k "
                            "ON k.id = r.skill_id WHERE r.session_id = :s", s=sid))
    assert sum(stored.values()) == 5  # 8 answered, 3 left out
    # the score differs from scoring every answer
    eng = create_db_engine(fsite.url)
    try:
        with transaction(eng, write=False) as db:
            row = db.get(CandidateSession, sid)
            engine = make_engine(load_item_pool(db, bank_id=fsite.bank_id()),
                                 Blueprint.from_dict(row.blueprint))
            every = engine.estimates(CatState.from_dict(row.engine_state))
    finally:
        eng.dispose()
    thetas = dict(fsite.sql("SELECT k.slug, r.theta FROM skill_results r JOIN skills k "
                            "ON k.id = r.skill_id WHERE r.session_id = :s", s=sid))
    assert any(abs(every[s].theta - t) > 1e-6 for s, t in thetas.items())
    page = _client(fapp, fsite, "recruiter").get(f"/recruiter/sessions/{sid}").data.decode()
    assert "Effort-moderated scoring:" in page and "3\nanswers given much faster" in page
    api = _client(fapp, fsite, "recruiter").get(f"/api/v1/reports/{sid}").json
    assert api["unscored_answers"] == 3
    # re-scoring the stored answers reproduces the stored (moderated) result
    capsys.readouterr()
    assert main(["sessions", "replay", "--org", "demo", str(sid), "--database-url",
                 fsite.url]) == 0
    assert json.loads(capsys.readouterr().out)["verification"]["rescoring_reproduced"] is True


def test_a_settings_change_applies_to_the_sessions_that_start_afterwards(fsite: Site,
                                                                        fapp: Flask, tmp_path):
    """A session is scored under the settings it started with: turning effort-moderated
    scoring off while it runs leaves it moderated; a session started afterwards is not."""
    _fit_times(fsite)
    blueprint = tmp_path / "bp.json"
    skill = fsite.traffic.skill  # type: ignore[attr-defined]
    blueprint.write_text(json.dumps({"skills": [{"skill": skill}], "min_items": 8,
                                     "max_items": 8, "se_target": None}))
    assert main(["assessment", "create", "--org", "demo", "--slug", "switched", "--name",
                 "Switched", "--no-check", "--blueprint", str(blueprint),
                 "--effort-moderated", "--database-url", fsite.url]) == 0

    def switch_off() -> None:
        assert main(["assessment", "security", "--org", "demo", "switched",
                     "--effort-moderated", "off", "--database-url", fsite.url]) == 0
        assert _json(fsite.sql("SELECT security FROM assessments WHERE slug = 'switched'"
                               )[0][0])["effort_moderated"] is False

    during = _take(fsite, fapp, _invite(fsite, "switched"), rapid_first=3, midway=switch_off)
    after = _take(fsite, fapp, _invite(fsite, "switched"), rapid_first=3)
    unscored = dict(fsite.sql("SELECT id, unscored_positions FROM test_sessions WHERE id IN "
                              "(:a, :b)", a=during, b=after))
    assert _json(unscored[during]) == [1, 2, 3] and unscored[after] is None
    n_scored = dict(fsite.sql("SELECT session_id, sum(n_items) FROM skill_results WHERE "
                              "session_id IN (:a, :b) GROUP BY session_id", a=during, b=after))
    assert n_scored == {during: 5, after: 8}
    rec = _client(fapp, fsite, "recruiter")
    assert "Effort-moderated scoring:" in rec.get(f"/recruiter/sessions/{during}").data.decode()
    assert "Effort-moderated scoring:" not in rec.get(
        f"/recruiter/sessions/{after}").data.decode()


def test_a_retake_gets_no_item_seen_before_and_the_recruiter_sees_both(fsite: Site,
                                                                       fapp: Flask, capsys):
    first = _take(fsite, fapp, _invite(fsite, "backend-engineer", "ada@example.com"))
    second_token = _invite(fsite, "backend-engineer", "Ada@Example.com")
    second = _take(fsite, fapp, second_token)
    seen = {e for (e,) in fsite.sql("SELECT item_id FROM responses WHERE session_id = :s",
                                    s=first)}
    again = {e for (e,) in fsite.sql("SELECT item_id FROM responses WHERE session_id = :s",
                                     s=second)}
    assert seen and again and not seen & again
    rec = _client(fapp, fsite, "recruiter")
    page = rec.get(f"/recruiter/sessions/{second}").data.decode()
    assert "Retake" in page and f"/recruiter/sessions/{first}" in page
    assert "left out of this test" in page
    api = rec.get(f"/api/v1/reports/{second}").json
    assert api["retake_of"] == [first] and api["excluded_seen_items"] >= len(seen)
    assert "Retake" not in rec.get(f"/recruiter/sessions/{first}").data.decode()
    listing = rec.get("/recruiter/").data.decode()
    assert listing.count(">retake</span>") == 1
    rows = {r["session_id"]: r for r in rec.get("/api/v1/invitations").json}
    assert rows[second]["retake"] and not rows[first]["retake"]
    # another organisation's candidate with the same address is not a retake of this one
    elsewhere = _take(fsite, fapp, _invite(fsite, "other-test", "ada@example.com"))
    assert "exclude_items" not in _json(fsite.sql(
        "SELECT blueprint FROM test_sessions WHERE id = :s", s=elsewhere)[0][0])
    # the replay of the retake, with its exclusions, reproduces the stored result
    capsys.readouterr()
    assert main(["sessions", "replay", "--org", "demo", str(second), "--database-url",
                 fsite.url]) == 0
    # the window: 0 switches retakes off
    assert main(["assessment", "security", "--org", "demo", "backend-engineer",
                 "--retake-window-days", "0", "--database-url", fsite.url]) == 0
    third = _take(fsite, fapp, _invite(fsite, "backend-engineer", "ada@example.com"))
    assert "exclude_items" not in _json(fsite.sql(
        "SELECT blueprint FROM test_sessions WHERE id = :s", s=third)[0][0])
    assert main(["assessment", "security", "--org", "demo", "backend-engineer",
                 "--retake-window-days", "180", "--database-url", fsite.url]) == 0
    # the invitations list marks a started test by the window it started under, as its report
    rows = {r["session_id"]: r for r in rec.get("/api/v1/invitations").json}
    assert rows[second]["retake"] and not rows[third]["retake"]
    assert "Retake" not in rec.get(f"/recruiter/sessions/{third}").data.decode()
