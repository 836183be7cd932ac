"""Health, readiness and metrics endpoints on the real app and database (SQLite, and PostgreSQL
when ``DATABASE_URL`` points at it)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import Site


def sample(client: FlaskClient, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    r = client.get("/metrics")
    assert r.status_code == 200
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def start(client: FlaskClient, token: str) -> dict:
    r = client.post("/api/v1/sessions", json={"invitation": token})
    assert r.status_code == 201, r.data
    return r.get_json()


def answer(client: FlaskClient, session: dict, choice: str = "a") -> FlaskClient:
    return client.post(f"/api/v1/sessions/{session['session_id']}/responses",
                       json={"item_id": session["pending_item"]["item_id"], "answer": choice},
                       headers={"Authorization": f"Bearer {session['token']}"})


def test_healthz_answers_without_login_or_database(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}


def test_readyz_reports_each_check_when_ready(client: FlaskClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["status"] == "ready"
    assert {k: v["ok"] for k, v in body["checks"].items()} == {
        "database": True, "schema": True, "queue": True}


def test_readyz_fails_when_the_sqlite_database_is_unreachable(site: Site,
                                                              tmp_path: Path) -> None:
    if not site.url.startswith("sqlite"):
        pytest.skip("the SQLite variant")
    folder = tmp_path / "db"
    folder.mkdir()
    copy = folder / "copy.sqlite3"
    shutil.copy(site.url.removeprefix("sqlite:///"), copy)
    app = site.app(DATABASE_URL=f"sqlite:///{copy}")
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    folder.rename(tmp_path / "moved")  # the file vanishes, as when a volume goes away
    app.extensions["proficio.db"].engine.dispose()  # no pooled connection keeps it open
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert str(tmp_path) not in r.get_data(as_text=True)  # no paths or URLs leak
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    (tmp_path / "moved").rename(folder)
    assert client.get("/readyz").status_code == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readyz_fails_when_postgresql_is_unreachable(site: Site) -> None:
    url = f"postgresql+psycopg://postgres:secret-pw@127.0.0.1:{_closed_port()}/test"
    app = site.app(DATABASE_URL=url, PROFICIO_CHECK_SCHEMA=False)
    before = sample(app.test_client(), "proficio_database_errors_total",
                    error="OperationalError")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    checks = r.get_json()["checks"]
    assert checks["database"]["ok"] is False and checks["schema"]["ok"] is False
    assert "secret-pw" not in r.get_data(as_text=True)
    after = sample(app.test_client(), "proficio_database_errors_total", error="OperationalError")
    assert after == before + 1


def test_readyz_fails_when_the_schema_is_behind(site: Site, tmp_path: Path) -> None:
    empty = tmp_path / f"empty-{uuid.uuid4().hex[:6]}.sqlite3"
    app = site.app(DATABASE_URL=f"sqlite:///{empty}", PROFICIO_CHECK_SCHEMA=False)
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    checks = r.get_json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["schema"]["ok"] is False and "proficio db upgrade" in checks["schema"]["detail"]


def test_readyz_fails_when_the_redis_queue_is_unreachable(site: Site) -> None:
    app = site.app(PROFICIO_QUEUE_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["queue"]["ok"] is False
    assert r.get_json()["checks"]["database"]["ok"] is True


def _hold_queue_lock(path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Another process (as gunicorn's master or a sibling worker) holding the embedded queue
    file's write lock for `seconds`; returns once the lock is held."""
    code = ("import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('begin exclusive')\n"
            "print('held', flush=True)\n"
            f"time.sleep({seconds})\n"
            "c.execute('commit')\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    return holder


def test_readyz_waits_out_a_transient_lock_on_the_embedded_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A worker's first look at the embedded queue takes its write lock; another process
    holding it for a moment is not an unready queue, one holding it past the check's timeout
    is (and the log says why)."""
    from web import jobs
    from web.observability import QUEUE_TIMEOUT_S, check_queue

    path = tmp_path / "jobs.sqlite3"
    monkeypatch.setenv("PROFICIO_QUEUE_URL", f"sqlite:///{path}")
    jobs.queue.cache_clear()
    try:
        jobs.queue()  # the file exists, in WAL mode, as after the master's start
        jobs.queue.cache_clear()  # this process now opens it as a newly forked worker does
        holder = _hold_queue_lock(path, 0.5)
        check = check_queue(None)
        assert check.ok and check.detail == "embedded queue readable"
        holder.communicate(timeout=10)

        jobs.queue.cache_clear()
        holder = _hold_queue_lock(path, QUEUE_TIMEOUT_S + 8)
        try:
            with caplog.at_level("WARNING", logger="web.observability"):
                check = check_queue(None)
            assert not check.ok and check.detail == "unreachable (OperationalError)"
            assert "database is locked" in caplog.text
        finally:
            holder.kill()
            holder.communicate(timeout=10)
    finally:
        jobs.queue.cache_clear()


def test_a_worker_forked_during_a_queue_transaction_can_use_the_queue(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn's master forks workers while its job threads use the embedded queue (the
    scheduler reads the schedule in a write transaction every second). SQLite keeps lock state
    per process: a worker forked in the middle of one inherited a lock it did not hold, and its
    own connections then failed with "database is locked" for its whole life (its jobs and its
    ``/readyz`` — the CI failure of 2026-12-06). The fork now waits for the transaction and
    closes the parent's connection first."""
    from web import jobs
    from web.observability import check_queue

    monkeypatch.setenv("PROFICIO_QUEUE_URL", f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    jobs.queue.cache_clear()
    try:
        storage = jobs.queue().huey.storage
        inside = threading.Event()

        def transaction() -> None:
            with storage.db(commit=True) as cursor:
                cursor.execute("SELECT count(*) FROM task").fetchall()
                inside.set()
                time.sleep(0.5)

        thread = threading.Thread(target=transaction)
        thread.start()
        assert inside.wait(10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: its first look at the queue, as its first /readyz
            try:
                check = check_queue(None)
                os.write(write, f"{check.ok} {check.detail}".encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read, "rb") as pipe:
            report = pipe.read().decode()
        thread.join()
        assert report == "True embedded queue readable"
        assert storage.queue_size() == 0  # the master's threads reopen their connection
    finally:
        jobs.queue.cache_clear()


def test_readyz_with_a_reachable_redis_queue(site: Site) -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    app = site.app(PROFICIO_QUEUE_URL="redis://127.0.0.1:6379/0")
    r = app.test_client().get("/readyz")
    assert r.status_code == 200, r.data
    assert r.get_json()["checks"]["queue"]["detail"] == "redis reachable"


def test_answers_sessions_and_requests_are_counted(site: Site, client: FlaskClient) -> None:
    (token,) = site.invite()
    started0 = sample(client, "proficio_sessions_started_total")
    answers0 = sample(client, "proficio_answers_recorded_total")
    selections0 = sample(client, "proficio_item_selection_seconds_count")
    route = "/api/v1/sessions/<int:session_id>/responses"
    posts0 = sample(client, "proficio_http_requests_total", method="POST", route=route,
                    status="200")
    session = start(client, token)
    assert sample(client, "proficio_sessions_started_total") == started0 + 1
    assert answer(client, session).status_code == 200
    assert sample(client, "proficio_answers_recorded_total") == answers0 + 1
    # the same answer again is acknowledged but not recorded twice: not counted twice
    assert answer(client, session).status_code == 200
    assert sample(client, "proficio_answers_recorded_total") == answers0 + 1
    # an invalid answer is refused and not counted
    current = client.get(f"/api/v1/sessions/{session['session_id']}",
                         headers={"Authorization": f"Bearer {session['token']}"}).get_json()
    current["token"] = session["token"]
    assert answer(client, current, choice="zz").status_code == 422
    assert sample(client, "proficio_answers_recorded_total") == answers0 + 1
    # start + one recorded answer = two selections
    assert sample(client, "proficio_item_selection_seconds_count") == selections0 + 2
    assert sample(client, "proficio_http_requests_total", method="POST", route=route,
                  status="200") == posts0 + 2
    assert sample(client, "proficio_http_request_duration_seconds_count", method="POST",
                  route=route) >= 2


def test_a_completed_session_is_counted_and_labels_carry_no_tokens(site: Site,
                                                                   client: FlaskClient) -> None:
    (token,) = site.invite()
    done0 = sample(client, "proficio_sessions_finished_total", status="completed")
    session = start(client, token)
    client.get(f"/t/{token}")  # a page route with the token in its path
    for _ in range(60):
        r = answer(client, session)
        assert r.status_code == 200
        nxt = r.get_json()
        if nxt["status"] != "in_progress":
            break
        session = {**nxt, "token": session["token"]}
    assert nxt["status"] == "completed"
    assert sample(client, "proficio_sessions_finished_total", status="completed") == done0 + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert token not in text and session["token"] not in text
    assert 'route="/t/<token>"' in text
    assert nxt["session_id"] is not None and f"/{nxt['session_id']}/" not in text


def test_metrics_need_the_token_when_one_is_configured(app: Flask) -> None:
    settings = app.config["PROFICIO_SETTINGS"]
    app.config["PROFICIO_SETTINGS"] = replace(settings, metrics_token="t0k3n-for-prometheus")
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer t0k3n-for-prometheus"})
    assert r.status_code == 200 and b"proficio_http_requests_total" in r.data
    assert r.content_type.startswith("text/plain")


def test_metrics_are_not_public_in_production_without_a_token(app: Flask) -> None:
    settings = app.config["PROFICIO_SETTINGS"]
    app.config["PROFICIO_SETTINGS"] = replace(settings, env="production")
    assert app.test_client().get("/metrics").status_code == 403
    app.config["PROFICIO_SETTINGS"] = replace(settings, env="production", metrics_public=True)
    assert app.test_client().get("/metrics").status_code == 200


def test_ops_endpoints_need_no_login_and_set_no_cookie(client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert "Set-Cookie" not in r.headers, path
