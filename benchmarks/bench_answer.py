"""Server time per answer, in-process (issue 20): the real Flask app (``web.app.create_app``)
driven through its test client on the demo database, SQLite or PostgreSQL.

``--sessions`` candidates start their sessions through ``POST /api/v1/sessions`` and answer in
round-robin order (every answer of one session is separated by the answers of the others, as
under load) until every test ends. What is timed is the ``POST /api/v1/sessions/<id>/responses``
call, request parsing to response body, with the database on the same machine. Printed: median,
p90 and p99 server time per answer, the statements per answer, and where the time goes (the
share of each step of `web.services.candidate.submit_answer`, measured by wrapping the step
functions in a second pass so the timing pass is not slowed by the wrappers).

    .venv/bin/python benchmarks/bench_answer.py --backend sqlite
    .venv/bin/python benchmarks/bench_answer.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from item_bank.db import create_db_engine, normalize_url  # noqa: E402
from item_bank.demo import build_demo_database  # noqa: E402
from web.app import create_app  # noqa: E402


@contextlib.contextmanager
def database(backend: str, url: str | None, folder: Path, n: int
             ) -> Iterator[tuple[str, list[str]]]:
    """A fresh demo database with ``n`` invitations (a throw-away PostgreSQL schema)."""
    if backend == "sqlite":
        db_url = f"sqlite:///{folder / 'answer.sqlite3'}"
        yield db_url, list(build_demo_database(db_url, n_invitations=n).invitation_tokens)
        return
    base = normalize_url(url or os.environ["DATABASE_URL"])
    schema = f"proficio_answer_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        db_url = f"{base}?options=-csearch_path%3D{schema}"
        yield db_url, list(build_demo_database(db_url, n_invitations=n).invitation_tokens)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run_sessions(app, tokens: list[str], seed: int, on_answer: Callable[[float], None]) -> int:
    """Start a session per token and answer round-robin until all end; returns answers."""
    client = app.test_client()
    rng = np.random.default_rng(seed)
    live = []
    for tok in tokens:
        body = client.post("/api/v1/sessions", json={"invitation": tok}).json
        live.append((body["session_id"], {"Authorization": f"Bearer {body['token']}"}, body))
    n = 0
    while live:
        nxt = []
        for sid, auth, body in live:
            item = body["pending_item"]
            opts = [o["id"] for o in item["options"]]
            answer = {"item_id": item["item_id"], "answer": opts[int(rng.integers(len(opts)))]}
            t0 = time.perf_counter()
            r = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)
            on_answer(time.perf_counter() - t0)
            assert r.status_code == 200, r.data
            n += 1
            if r.json["status"] == "in_progress":
                nxt.append((sid, auth, r.json))
        live = nxt
    return n


#: The steps of `submit_answer` whose time is reported (module, function).
STEPS = [("web.services.candidate", "_lock"), ("web.services.candidate", "_load"),
         ("web.services.candidate", "_accommodation"),
         ("web.services.engines", "recent_fingerprint"), ("engine.core.CatEngine", "record"),
         ("engine.state.CatState", "to_dict"), ("item_bank.repository", "save_engine_state"),
         ("web.services.candidate", "_finalize"), ("web.services.candidate", "_view"),
         ("sqlalchemy.orm.session.Session", "flush"),
         ("sqlalchemy.orm.session.Session", "commit")]


def _resolve(path: str):
    import importlib
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for p in parts[cut:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(path)


@contextlib.contextmanager
def step_timers(spent: dict[str, float]) -> Iterator[None]:
    """Wrap the `STEPS` to add their time (outermost call only) into ``spent``."""
    saved = []
    depth = defaultdict(int)
    for owner_path, name in STEPS:
        owner = _resolve(owner_path)
        fn = owner.__dict__[name]
        label = f"{owner_path.rsplit('.', 1)[-1]}.{name}"

        def wrapped(*a, __fn=fn, __label=label, **k):
            depth[__label] += 1
            t0 = time.perf_counter()
            try:
                return __fn(*a, **k)
            finally:
                depth[__label] -= 1
                if depth[__label] == 0:
                    spent[__label] += time.perf_counter() - t0
        setattr(owner, name, wrapped)
        saved.append((owner, name, fn))
    try:
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--url", help="PostgreSQL URL (default: $DATABASE_URL)")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            database(args.backend, args.url, Path(tmp), 2 * args.sessions + 2) as (url, tokens):
        app = create_app({"DATABASE_URL": url, "TESTING": True, "RATELIMIT_ENABLED": False})
        engine = app.extensions["proficio.db"].engine
        statements = [0]
        event.listen(engine, "before_cursor_execute",
                     lambda *a, **k: statements.__setitem__(0, statements[0] + 1))
        run_sessions(app, tokens[:1], args.seed, lambda t: None)  # warm-up: caches, imports
        times: list[float] = []
        statements[0] = 0
        n = run_sessions(app, tokens[1:1 + args.sessions], args.seed, times.append)
        per_answer_statements = statements[0] / n  # (session starts included)
        spent: dict[str, float] = defaultdict(float)
        total: list[float] = []
        with step_timers(spent):
            m = run_sessions(app, tokens[1 + args.sessions:1 + 2 * args.sessions], args.seed,
                             total.append)
        engine.dispose()
    ms = np.array(times) * 1e3
    print(f"backend={args.backend} sessions={args.sessions} answers={n}")
    print(f"server time per answer: median {np.median(ms):.2f} ms, p90 "
          f"{np.percentile(ms, 90):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms; "
          f"{per_answer_statements:.1f} SQL statements per answer (session starts included)")
    whole = sum(total)
    print(f"where the time goes (second pass, {m} answers, mean {whole / m * 1e3:.2f} ms "
          f"per answer with the step timers):")
    for label, s in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {label:32s} {s / m * 1e3:6.2f} ms  {100 * s / whole:5.1f} %")


if __name__ == "__main__":
    main()
