"""Shared machinery of the load and fault studies: a demo database, a real gunicorn server,
simulated candidates over HTTP (asyncio + httpx) and the integrity check against the database.

Used by ``benchmarks/bench_load.py`` and by the fault tests in ``tests/faults/``.
"""

from __future__ import annotations

import asyncio
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
                 secret: str = "load-study-secret-key-" + "x" * 16) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PROFICIO_RATELIMIT": "0",
           "PROFICIO_INSTANCE": str(folder), "SECRET_KEY": secret}
    proc = subprocess.Popen([PROFICIO, "serve", "--port", str(port), "--workers", str(workers)],
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


async def run_client(c: Client, http: httpx.AsyncClient, keys, params, think: float) -> None:
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
    limits = httpx.Limits(max_connections=len(clients) + 10, max_keepalive_connections=len(clients))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=60) as http:
        t0 = RUN_START[0] = time.perf_counter()
        await asyncio.gather(*(run_client(c, http, keys, params, think) for c in clients))
        return time.perf_counter() - t0


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


