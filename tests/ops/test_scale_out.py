"""Scale-out: two ``proficio serve`` processes (separate gunicorn masters, on different ports)
over one database — the SQLite file, and a PostgreSQL schema when ``DATABASE_URL`` points at
PostgreSQL — complete candidate sessions while every request alternates between them.

This is the deployment recipe of docs/operator-guide.md in miniature: the web tier keeps no
state, so any process can serve any request. Both servers also share one
``PROMETHEUS_MULTIPROC_DIR``, so ``/metrics`` on either sums the answers recorded by both. When
Redis answers on 127.0.0.1:6379, the job queue is on Redis, the app processes run no job
threads, and a separate ``proficio worker`` runs a calibration requested through one of them.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.web.conftest import Site

PROFICIO = str(Path(sys.executable).with_name("proficio"))
START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body: dict | None = None,
         token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            status = r.status
            kind = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if "json" in kind else raw.decode()


class Server:
    """A ``proficio serve`` (or, with ``worker=True``, a ``proficio worker``) subprocess."""

    def __init__(self, env: dict[str, str], log: Path, *, worker: bool = False,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        command = [PROFICIO, "worker"] if worker else [
            PROFICIO, "serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(self.port),
            *extra]
        self.proc = subprocess.Popen(command, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n"
                                     f"{self.log.read_text()[-3000:]}")
            try:
                if call(self.base, "GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready:\n{self.log.read_text()[-3000:]}")

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # gunicorn's quick shutdown

    def stop(self) -> None:
        self.interrupt()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()


def redis_available() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@dataclass
class Cluster:
    servers: list[Server]
    worker: Server | None  # a `proficio worker` on a Redis queue, when Redis is available


@pytest.fixture
def cluster(site: Site, tmp_path: Path) -> Iterator[Cluster]:
    """Two app processes on one database; with Redis, no job threads in them and one separate
    job worker on a Redis queue (a random Redis database number, so concurrent runs of the
    suite do not share a queue)."""
    (tmp_path / "metrics").mkdir()
    env = {**os.environ, "DATABASE_URL": site.url,
           "PROFICIO_INSTANCE": str(tmp_path / "instance"),  # shared secret key and job queue
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "PROFICIO_LOG_FORMAT": "json", "PROFICIO_ENV": "development"}
    extra: tuple[str, ...] = ()
    worker = None
    if redis_available():
        env["PROFICIO_QUEUE_URL"] = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
        extra = ("--no-embedded-jobs",)
        worker = Server(env, tmp_path / "worker.log", worker=True)
    servers = [Server(env, tmp_path / f"server{k}.log", extra=extra) for k in range(2)]
    everything = [*servers, *([worker] if worker else [])]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for s in servers:
            s.wait_ready(deadline)
        yield Cluster(servers, worker)
    finally:
        for s in everything:  # all shut down at once
            s.interrupt()
        for s in everything:
            s.stop()


@pytest.mark.slow
def test_two_app_processes_complete_sessions_alternating(site: Site, cluster: Cluster) -> None:
    tokens = site.invite(2)
    bases = [s.base for s in cluster.servers]
    sessions: list[dict] = []
    turn = 0
    for token in tokens:
        status, body = call(bases[turn % 2], "POST", "/api/v1/sessions", {"invitation": token})
        turn += 1
        assert status == 201, body
        sessions.append(body)
    bearer = [s["token"] for s in sessions]
    answered = [0, 0]
    while any(s["status"] == "in_progress" for s in sessions):
        for k, s in enumerate(sessions):
            if s["status"] != "in_progress":
                continue
            item = s["pending_item"]["item_id"]
            status, body = call(bases[turn % 2], "POST",
                                f"/api/v1/sessions/{s['session_id']}/responses",
                                {"item_id": item, "answer": "abcd"[answered[k] % 4]}, bearer[k])
            turn += 1
            assert status == 200, body
            answered[k] += 1
            assert body["answered"] == answered[k]
            # the other process sees the answer at once
            status, seen = call(bases[turn % 2], "GET", f"/api/v1/sessions/{s['session_id']}",
                                token=bearer[k])
            turn += 1
            assert status == 200 and seen["answered"] == answered[k]
            assert seen["pending_item"] == body["pending_item"]
            sessions[k] = body
            assert answered[k] <= body["max_items"]
    assert [s["status"] for s in sessions] == ["completed", "completed"]
    for s, n in zip(sessions, answered, strict=True):
        rows = site.sql("SELECT position FROM responses WHERE session_id = :i ORDER BY position",
                        i=s["session_id"])
        assert [r[0] for r in rows] == list(range(1, n + 1))
        assert site.sql("SELECT count(*) FROM skill_results WHERE session_id = :i",
                        i=s["session_id"])[0][0] > 0

    # both masters write into one metrics folder: either /metrics sums both processes
    for base in bases:
        status, text = call(base, "GET", "/metrics")
        assert status == 200
        values = {smp.name: smp.value for fam in text_string_to_metric_families(text)
                  for smp in fam.samples if not smp.labels}
        assert values["proficio_answers_recorded_total"] == sum(answered)
        assert values["proficio_sessions_started_total"] == 2
    for server in cluster.servers:
        log = server.log.read_text()
        for secret in (*tokens, *bearer):
            assert secret not in log
        access = [json.loads(line) for line in log.splitlines()
                  if line.startswith("{") and '"proficio.access"' in line]
        assert access and all(a["route"].startswith("/") for a in access)
        # its worker built the engines candidates can start before it served (`warm_up`)
        assert "assessment engine(s) built" in log, log[-3000:]


    if cluster.worker is not None:
        _calibration_runs_in_the_worker(site, cluster)


def _calibration_runs_in_the_worker(site: Site, cluster: Cluster) -> None:
    """A calibration requested on one server runs in the separate worker (over Redis), its
    progress is seen on the other server, and the worker's log lines carry the id of the
    request that queued it."""
    assert cluster.worker is not None
    first, second = (s.base for s in cluster.servers)
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = browser.open(f"{first}/login", timeout=30).read().decode()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    csrf = match.group(1)
    cred = site.info.credentials("psychometrician")
    form = urllib.parse.urlencode({"csrf_token": csrf, "email": cred.email,
                                   "password": cred.password}).encode()
    browser.open(f"{first}/login", data=form, timeout=30).read()
    page = browser.open(f"{first}/account", timeout=30).read().decode()  # new token at sign-in
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    request = urllib.request.Request(
        f"{first}/api/v1/calibrations", method="POST",
        data=json.dumps({"model": "2pl", "mode": "free"}).encode(),
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf,
                 "X-Request-ID": "calib-req-77"})
    with browser.open(request, timeout=30) as r:
        assert r.status == 202
        job = json.loads(r.read())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with browser.open(f"{second}/api/v1/calibrations/{job['id']}", timeout=30) as r:
            job = json.loads(r.read())
        if job["status"] in ("succeeded", "failed"):
            break
        assert cluster.worker.proc.poll() is None, cluster.worker.log.read_text()[-3000:]
        time.sleep(0.3)
    assert job["status"] in ("succeeded", "failed"), job
    assert job["message"]
    cluster.worker.interrupt()
    cluster.worker.stop()
    text = cluster.worker.log.read_text()
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    ours = [x["message"] for x in lines if x["request_id"] == "calib-req-77"]
    assert f"calibration job {job['id']}: running" in ours, lines
    assert f"calibration job {job['id']}: done" in ours, lines
    for server in cluster.servers:  # the web processes did not run it
        assert "calibration job" not in server.log.read_text()
    assert cred.password not in text
