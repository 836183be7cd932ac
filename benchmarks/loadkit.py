"""Shared machinery of the load and fault studies: a demo database, a real gunicorn server,
simulated candidates over HTTP (asyncio + httpx) and the integrity check against the database.

Used by ``benchmarks/bench_load.py`` and by the fault tests in ``tests/faults/``.
"""

from __future__ import annotations

import asyncio
import json as _json
import os
import random
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
#: Attempts per answer; with the back-off this rides out a server restart of ~30 s.
RETRIES = 60
PROFICIO = str(ROOT / ".venv" / "bin" / "proficio")


@dataclass
class Client:
    token: str
    theta: float
    seed: int
    session_id: int | None = None
    acknowledged: list[tuple[str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    #: per latency: when the answer was sent (seconds since the run started) and whether it
    #: ended the test (the last answer stores the results)
    sent_at: list[float] = field(default_factory=list)
    final: list[bool] = field(default_factory=list)
    errors: int = 0
    retries: int = 0
    status: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_database(backend: str, folder: Path, n: int) -> tuple[str, list[str], callable]:
    from item_bank.db import create_db_engine, normalize_url
    from item_bank.demo import build_demo_database

    if backend == "sqlite":
        url = f"sqlite:///{folder / 'load.sqlite3'}"
        cleanup = lambda: None  # noqa: E731
    else:
        base = normalize_url(os.environ["DATABASE_URL"])
        schema = f"proficio_load_{uuid.uuid4().hex[:8]}"
        admin = create_db_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{base}?options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()

    info = build_demo_database(url, n_invitations=n)
    return url, list(info.invitation_tokens), cleanup


def bank_facts(url: str) -> tuple[dict[str, str], dict[str, tuple[float, float]]]:
    from item_bank.db import create_db_engine

    eng = create_db_engine(url)
    with eng.connect() as conn:
        keys = dict(conn.execute(text("SELECT external_id, key FROM items")).all())
        params = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT i.external_id, v.a, v.b FROM items i JOIN item_parameter_versions v "
            "ON v.item_id = i.id AND v.is_current"))}
    eng.dispose()
    return keys, params


def start_server(url: str, port: int, workers: int, folder: Path,
                 secret: str = "load-study-secret-key-" + "x" * 16,
                 threads: int | None = None) -> subprocess.Popen:
    """``proficio serve`` on ``port`` (``threads``: its ``--threads``; None: its default)."""
    env = {**os.environ, "DATABASE_URL": url, "PROFICIO_RATELIMIT": "0",
           "PROFICIO_INSTANCE": str(folder), "SECRET_KEY": secret}
    extra = [] if threads is None else ["--threads", str(threads)]
    proc = subprocess.Popen([PROFICIO, "serve", "--port", str(port), "--workers", str(workers),
                             *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


RUN_START = [0.0]  # perf_counter() when `drive` started the clients


class Reply:
    """A response of `LoopbackHTTP`: status, body, ``json()`` and ``text``."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code, self.content = status_code, content

    def json(self):
        return _json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class LoopbackHTTP:
    """A minimal HTTP/1.1 client for the load studies: one connection per simulated candidate
    over asyncio streams, kept alive while the server allows it (gunicorn's sync workers close
    every connection after its response; gthread workers keep it), JSON request bodies and
    ``Content-Length`` responses. httpx, which the studies used before, costs several
    milliseconds of CPU per request — on the 2 shared cores the load generator then took a
    third of the machine from the server it measures; this client takes a small fraction of
    that. Connection failures raise httpx's exception types, so callers retry as before."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port, self.timeout = port, timeout
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, json: dict | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        body = _json.dumps(json).encode()
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        reused = self._conn is not None
        try:
            return await asyncio.wait_for(self._exchange(request), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            self.close()
            if reused and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                # the server closed an idle kept-alive connection before reading the request:
                # send it again on a new connection (what browsers and httpx do)
                return await self.post(path, json=json, headers=headers)
            if isinstance(exc, ConnectionRefusedError):
                raise httpx.ConnectError(str(exc)) from exc
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except TimeoutError as exc:
            self.close()
            raise httpx.ReadTimeout("no response") from exc

    async def _exchange(self, request: bytes) -> Reply:
        if self._conn is None:
            self._conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._conn
        writer.write(request)
        await writer.drain()
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode(
            "latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip()
                  for k, _, v in (line.partition(":") for line in lines if line)}
        content = await reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return Reply(int(status_line.split(" ", 2)[1]), content)

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


async def run_client(c: Client, http: LoopbackHTTP, keys, params, think: float) -> None:
    rng = random.Random(c.seed)
    for attempt in range(RETRIES):
        try:
            r = await http.post("/api/v1/sessions", json={"invitation": c.token})
            break
        except httpx.HTTPError:
            c.retries += 1
            await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
    else:
        c.status = "could not start"
        return
    if r.status_code != 201:
        c.errors += 1
        c.status = f"start {r.status_code}"
        return
    body = r.json()
    c.session_id = body["session_id"]
    auth = {"Authorization": f"Bearer {body['token']}"}
    while body["status"] == "in_progress":
        item = body["pending_item"]["item_id"]
        a, b = params[item]
        p = 1.0 / (1.0 + np.exp(-a * (c.theta - b)))
        options = [o["id"] for o in body["pending_item"]["options"]]
        wrong = [o for o in options if o != keys[item]]
        answer = keys[item] if rng.random() < p else rng.choice(wrong)
        if think:
            await asyncio.sleep(rng.uniform(0, 2 * think))
        for attempt in range(RETRIES):
            t0 = time.perf_counter()
            try:
                r = await http.post(f"/api/v1/sessions/{c.session_id}/responses", headers=auth,
                                    json={"item_id": item, "answer": answer})
            except httpx.HTTPError:
                c.retries += 1  # server down (killed, restarting): retry the same answer
                await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
                continue
            if r.status_code >= 500:
                c.errors += 1
                c.retries += 1
                await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
                continue
            break
        else:
            c.status = "gave up"
            return
        if r.status_code != 200:
            c.errors += 1
            c.status = f"answer {r.status_code}: {r.text[:200]}"
            return
        c.latencies.append(time.perf_counter() - t0)
        c.sent_at.append(t0 - RUN_START[0])
        c.acknowledged.append((item, answer))
        body = r.json()
        c.final.append(body["status"] != "in_progress")
    c.status = body["status"]


async def drive(clients: list[Client], port: int, keys, params, think: float) -> float:
    """Run every client to the end of its test, each on its own `LoopbackHTTP` connection."""
    conns = [LoopbackHTTP(port) for _ in clients]
    try:
        t0 = RUN_START[0] = time.perf_counter()
        await asyncio.gather(*(run_client(c, h, keys, params, think)
                               for c, h in zip(clients, conns, strict=True)))
        return time.perf_counter() - t0
    finally:
        for h in conns:
            h.close()


def verify(url: str, clients: list[Client]) -> dict[str, int]:
    """Compare every acknowledged answer with the database and re-score every session."""
    from engine import CatState
    from item_bank.db import create_db_engine, session_factory
    from item_bank.models import Assessment
    from web.services.engines import blueprint_of, build_engine  # the server's own engine

    eng = create_db_engine(url)
    out = {"lost": 0, "duplicated": 0, "wrong_session": 0, "theta_mismatch": 0,
           "replay_mismatch": 0, "sessions_checked": 0}
    by_session = {c.session_id: c for c in clients if c.session_id is not None}
    with session_factory(eng)() as db:
        rows = db.execute(text(
            "SELECT r.session_id, i.external_id, r.raw_answer, r.score, r.position "
            "FROM responses r JOIN items i ON i.id = r.item_id ORDER BY r.session_id, "
            "r.position")).all()
        stored: dict[int, list[tuple]] = {}
        for sid, iid, ans, score, pos in rows:
            stored.setdefault(sid, []).append((iid, ans, score, pos))
        for sid, c in by_session.items():
            got = [(i, a) for i, a, _, _ in stored.get(sid, [])]
            out["lost"] += len(set(c.acknowledged) - set(got))
            out["duplicated"] += len(got) - len(set(got))
        for sid, rs in stored.items():
            c = by_session.get(sid)
            mine = set(c.acknowledged) if c else set()
            out["wrong_session"] += sum(1 for i, a, _, _ in rs if (i, a) not in mine)
        engine = build_engine(db, blueprint_of(db.query(Assessment).first()))
        results = db.execute(text(
            "SELECT s.id, k.slug, r.theta FROM skill_results r JOIN skills k ON k.id = r.skill_id "
            "JOIN test_sessions s ON s.id = r.session_id")).all()
        thetas: dict[int, dict[str, float]] = {}
        for sid, skill, theta in results:
            thetas.setdefault(sid, {})[skill] = theta
        states = dict(db.execute(text("SELECT id, engine_state FROM test_sessions")).all())
        for sid, rs in stored.items():
            raw = states[sid]
            seed = CatState.from_dict(raw if isinstance(raw, dict) else __import__("json")
                                      .loads(raw)).seed
            state = engine.start(seed=seed)
            for iid, _, score, _ in rs:
                if state.pending != iid:
                    out["replay_mismatch"] += 1
                    break
                state = engine.record(state, iid, score)
            est = engine.estimates(state)
            if sid in thetas:
                out["sessions_checked"] += 1
                for skill, theta in thetas[sid].items():
                    if abs(est[skill].theta - theta) > 1e-9:
                        out["theta_mismatch"] += 1
    eng.dispose()
    return out


