"""Signed webhooks end to end: a recruiter adds a receiver on the page; sessions complete, time
out and are revoked; the receiver is down, then up; a dispatcher dies between sending and
bookkeeping; a new process (the restarted server) and the scheduler's job take over. Every
event takes effect exactly once at the receiver (idempotency key), each signature verifies with
the recipe of docs/recruiter-guide.md, and the payload's report is the JSON result endpoint's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask

from item_bank.db import create_db_engine
from item_bank.security import hash_token
from tests.web.conftest import Site, csrf_of, expire_deadline
from tests.web.test_candidate_flow import pending, session_id_of, start
from tests.web.test_recruiter_integration import free_port, recruiter
from web.services import webhooks

ROOT = Path(__file__).resolve().parents[2]


def _documented_recipe():  # type: ignore[no-untyped-def]
    """The ``verify`` function of docs/recruiter-guide.md, taken from the page itself."""
    page = (ROOT / "docs" / "recruiter-guide.md").read_text(encoding="utf-8")
    (code,) = [c for c in re.findall(r"```python\n(.*?)```", page, re.S) if "def verify" in c]
    namespace: dict = {}
    exec(compile(code, "recruiter-guide.md", "exec"), namespace)
    return namespace["verify"]


_verify = _documented_recipe()


def verify_signature(secret: str, header: str, body: bytes, now: float) -> bool:
    """The documented recipe, as a receiver would run it (``now`` is the receiver's clock)."""
    assert abs(now - time.time()) < 60
    return bool(_verify(secret, header, body))


class Receiver:
    """An applicant-tracking system's endpoint: applies each event id once."""

    def __init__(self, port: int, secret: str) -> None:
        self.port, self.secret = port, secret
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.applied: dict[str, dict] = {}
        self.bad_signatures = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items()}
                receiver.requests.append((headers, body))
                if not verify_signature(receiver.secret, headers["Proficio-Signature"], body,
                                        time.time()):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                event = json.loads(body)
                assert event["id"] == headers["Proficio-Event-Id"]
                receiver.applied.setdefault(event["id"], event)  # idempotent on the id
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def deliver_in_new_process(url: str) -> str:
    """``proficio webhooks deliver`` in a fresh process: what a restarted server runs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", "from web.cli import main; raise "
                          "SystemExit(main())", "webhooks", "deliver", "--database-url", url],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def time_passes(site: Site) -> None:
    """Every pending delivery's wait (backoff or lease) has elapsed."""
    site.sql("UPDATE webhook_deliveries SET next_attempt_at = :t WHERE status = 'pending'",
             t=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


@pytest.fixture
def hook(site: Site, app: Flask) -> Iterator[tuple[Receiver, str]]:
    # the shared site may hold other tests' receivers and deliveries: start from none
    site.sql("UPDATE webhooks SET active = :f", f=False)
    site.sql("DELETE FROM webhook_deliveries")
    port = free_port()
    staff = recruiter(app, site)
    page = staff.get("/recruiter/webhooks")
    r = staff.post("/recruiter/webhooks", data={"csrf_token": csrf_of(page.data),
                                                "action": "add",
                                                "url": f"http://127.0.0.1:{port}/ats"})
    assert r.status_code == 200
    secret = re.search(rb"(whsec_[A-Za-z0-9_-]+)", r.data).group(1).decode()
    receiver = Receiver(port, secret)
    yield receiver, secret
    receiver.stop()
    # leave the shared site without a receiver or pending events for the other tests
    site.sql("UPDATE webhooks SET active = :f", f=False)
    site.sql("UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'pending'")


def test_each_event_reaches_the_receiver_exactly_once_across_outage_crash_and_restart(
        site: Site, app: Flask, hook) -> None:
    receiver, secret = hook
    client = app.test_client()
    staff = recruiter(app, site)

    # 1. events: a completed test, a timed-out one, one revoked mid-test, one revoked unstarted
    done_token, late_token, mid_token, unstarted_token = site.invite(4)
    csrf = start(client, done_token)
    while True:
        item, options, _ = pending(client, done_token)
        r = client.post(f"/t/{done_token}/answer",
                        data={"csrf_token": csrf, "item_id": item, "answer": options[0]})
        if r.headers["Location"].endswith("/done"):
            break
    done_sid = session_id_of(site, done_token)
    start(client, late_token)
    expire_deadline(site, session_id_of(site, late_token))
    client.get(f"/t/{late_token}/question")
    start(client, mid_token)
    for token in (mid_token, unstarted_token):
        inv = site.sql("SELECT v.id FROM invitations v WHERE v.token_hash = :h",
                       h=hash_token(token))[0][0]
        confirm = staff.get(f"/recruiter/invitations/{inv}/revoke")
        staff.post(f"/recruiter/invitations/{inv}/revoke",
                   data={"csrf_token": csrf_of(confirm.data)})
    rows = site.sql("SELECT event_type, status FROM webhook_deliveries ORDER BY id")
    assert sorted(t for t, _ in rows) == ["invitation.revoked", "session.abandoned",
                                           "session.completed", "session.timed_out"]
    assert {s for _, s in rows} == {"pending"}

    # 2. the receiver is down: every attempt fails and is logged, with a backoff
    assert "delivered 0, to retry 4" in deliver_in_new_process(site.url)
    log = site.sql("SELECT attempts, status, last_error FROM webhook_deliveries")
    assert all(a == 1 and s == "pending" and e for a, s, e in log)
    page = staff.get("/recruiter/webhooks").data
    assert page.count(b"Connection refused") == 4 or page.count(b"URLError") == 4

    # 3. the receiver is back, but nothing is due before the backoff ends
    receiver.start()
    assert "delivered 0, to retry 0" in deliver_in_new_process(site.url)
    assert receiver.requests == []

    # 4. time passes; a dispatcher dies right after its first POST, before recording it
    time_passes(site)
    engine = create_db_engine(site.url)

    class Died(BaseException):
        pass

    def send_then_die(url: str, body: bytes, headers: dict[str, str]) -> int:
        webhooks.post(url, body, headers)
        raise Died

    try:
        with pytest.raises(Died):
            webhooks.deliver_due(engine, send=send_then_die)
    finally:
        engine.dispose()
    assert len(receiver.requests) == 1
    crashed_id = receiver.requests[0][0]["Proficio-Event-Id"]

    # 5. the scheduler's job in a fresh app (the restarted server) sends the other three; the
    #    crashed one is still leased
    import web.jobs

    os.environ["DATABASE_URL"] = site.url
    try:
        web.jobs._maintenance_app.cache_clear()
        web.jobs._maintenance()
    finally:
        web.jobs._maintenance_app().extensions["proficio.db"].engine.dispose()
        web.jobs._maintenance_app.cache_clear()
        del os.environ["DATABASE_URL"]
    assert len(receiver.requests) == 4 and len(receiver.applied) == 4

    # 6. the lease ends: the crashed delivery goes again, with the same event id
    time_passes(site)
    assert "delivered 1, to retry 0" in deliver_in_new_process(site.url)
    assert "delivered 0, to retry 0" in deliver_in_new_process(site.url)

    ids = [h["Proficio-Event-Id"] for h, _ in receiver.requests]
    assert len(ids) == 5 and ids.count(crashed_id) == 2  # sent twice, applied once
    assert len(receiver.applied) == 4 and receiver.bad_signatures == 0
    assert site.sql("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'"
                    )[0][0] == 4
    for headers, body in receiver.requests:
        assert verify_signature(secret, headers["Proficio-Signature"], body, time.time())
        assert not verify_signature(secret, headers["Proficio-Signature"], body + b" ",
                                    time.time())
        assert not verify_signature("whsec_wrong", headers["Proficio-Signature"], body,
                                    time.time())

    # the payload carries the result exactly as the JSON result endpoint returns it
    completed = next(e for e in receiver.applied.values() if e["type"] == "session.completed")
    assert completed["data"]["session_id"] == done_sid
    assert completed["data"]["report"] == staff.get(f"/api/v1/reports/{done_sid}").get_json()
    assert len(completed["data"]["report"]["skills"]) == 8
    unstarted = next(e for e in receiver.applied.values()
                     if e["type"] == "invitation.revoked")
    assert unstarted["data"]["report"] is None


def test_backoff_doubles_up_to_a_cap_and_gives_up_after_max_attempts(site: Site,
                                                                    hook) -> None:
    assert [webhooks.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert webhooks.backoff(30) == dt.timedelta(hours=6)
    (token,) = site.invite()
    client = site.app().test_client()
    start(client, token)
    expire_deadline(site, session_id_of(site, token))
    client.get(f"/t/{token}/question")
    engine = create_db_engine(site.url)
    try:
        for attempt in range(1, webhooks.MAX_ATTEMPTS + 1):
            run = webhooks.deliver_due(engine)  # the receiver never comes up
            assert (run.retried, run.failed) == ((1, 0) if attempt < webhooks.MAX_ATTEMPTS
                                                 else (0, 1))
            if attempt < webhooks.MAX_ATTEMPTS:
                wait = site.sql("SELECT next_attempt_at, last_attempt_at FROM "
                                "webhook_deliveries WHERE status = 'pending'")[0]
                gap = (_as_dt(wait[0]) - _as_dt(wait[1])).total_seconds()
                assert gap == webhooks.backoff(attempt).total_seconds()
            time_passes(site)
    finally:
        engine.dispose()
    status = site.sql("SELECT status, attempts FROM webhook_deliveries ORDER BY id DESC")[0]
    assert status[0] == "failed" and status[1] == webhooks.MAX_ATTEMPTS


def _as_dt(value: object) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def test_webhook_urls_are_validated_and_scoped(site: Site, app: Flask, staff_client) -> None:
    staff = recruiter(app, site)
    page = staff.get("/recruiter/webhooks")
    for bad in ("ftp://x.example/", "https://user:pw@x.example/", "not a url"):
        r = staff.post("/recruiter/webhooks", data={"csrf_token": csrf_of(page.data),
                                                    "action": "add", "url": bad})
        assert r.status_code == 422 and b"field &#39;url&#39;" in r.data
    r = staff.post("/recruiter/webhooks", data={"csrf_token": csrf_of(page.data),
                                                "action": "add", "url": "https://ats.example/h"})
    hook_id = site.sql("SELECT id FROM webhooks WHERE url = 'https://ats.example/h'")[0][0]
    other = staff_client("other")
    other_page = other.get("/recruiter/webhooks")
    assert b"ats.example" not in other_page.data
    r = other.post("/recruiter/webhooks", data={"csrf_token": csrf_of(other_page.data),
                                                "action": "remove", "webhook": str(hook_id)})
    assert r.status_code == 404
    r = staff.post("/recruiter/webhooks", data={"csrf_token": csrf_of(page.data),
                                                "action": "remove", "webhook": str(hook_id)})
    assert r.status_code == 200 and b"ats.example" not in r.data.split(b"Delivery log")[0]


def test_documented_recipe_accepts_fresh_signatures_and_rejects_replays() -> None:
    body = b'{"id":"evt_1","type":"session.completed"}'
    now = int(time.time())
    assert _verify("whsec_x", webhooks.sign("whsec_x", now, body), body)
    assert not _verify("whsec_x", webhooks.sign("whsec_x", now - 1000, body), body)  # replay
    assert not _verify("whsec_y", webhooks.sign("whsec_x", now, body), body)
