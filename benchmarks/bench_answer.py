"""Server time per answer, in-process (issue 20): the real Flask app (``web.app.create_app``)
driven through its test client on the demo database, SQLite or PostgreSQL.

``--sessions`` candidates start their sessions through ``POST /api/v1/sessions`` and answer in
round-robin order (every answer of one session is separated by the answers of the others, as
under load) until every test ends. What is timed is the ``POST /api/v1/sessions/<id>/responses``
call, request parsing to response body, with the database on the same machine. Printed: median,
p90 and p99 server time per answer (and the application's own part of it: the WSGI call,
without the test client's request building and response wrapping), the CPU time of this
process per answer (robust on a loaded
machine, where a database round trip waits for the scheduler), the statements per answer, and
where the time goes (the share of each step of `web.services.candidate.submit_answer`, measured
by wrapping the step functions in a second pass so the timing pass is not slowed by them), and
the median time of a session start, of the last answer of a test (which stores its results) and
of the other answers.

    .venv/bin/python benchmarks/bench_answer.py --backend sqlite
    .venv/bin/python benchmarks/bench_answer.py --backend postgresql \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after $PYTHONPATH: ``--compare`` runs children on another tree

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


def run_sessions(app, tokens: list[str], seed: int,
                 on_answer: Callable[[float, float, bool], None],
                 on_start: Callable[[float], None] | None = None) -> int:
    """Start a session per token and answer round-robin until all end; returns answers.
    ``on_answer(seconds, cpu seconds, ended the test)``; ``on_start(seconds)``."""
    client = app.test_client()
    rng = np.random.default_rng(seed)
    live = []
    for tok in tokens:
        t0 = time.perf_counter()
        body = client.post("/api/v1/sessions", json={"invitation": tok}).json
        if on_start is not None:
            on_start(time.perf_counter() - t0)
        live.append((body["session_id"], {"Authorization": f"Bearer {body['token']}"}, body))
    n = 0
    while live:
        nxt = []
        for sid, auth, body in live:
            item = body["pending_item"]
            opts = [o["id"] for o in item["options"]]
            answer = {"item_id": item["item_id"], "answer": opts[int(rng.integers(len(opts)))]}
            t0, c0 = time.perf_counter(), time.process_time()
            r = client.post(f"/api/v1/sessions/{sid}/responses", json=answer, headers=auth)
            t, c = time.perf_counter() - t0, time.process_time() - c0
            assert r.status_code == 200, r.data
            on_answer(t, c, r.json["status"] != "in_progress")
            n += 1
            if r.json["status"] == "in_progress":
                nxt.append((sid, auth, r.json))
        live = nxt
    return n


#: The steps of `submit_answer` whose time is reported (module, function).
STEPS = [("web.services.candidate", "_lock_with_accommodation"),
         ("web.services.candidate", "_lock"), ("web.services.candidate", "_accommodation"),
         ("web.services.candidate", "_load"), ("item_bank.repository", "record_answer"),
         ("web.services.engines", "recent_fingerprint"), ("engine.core.CatEngine", "record"),
         ("engine.state.CatState", "to_dict"), ("item_bank.repository", "save_engine_state"),
         ("web.services.candidate", "_finalize"), ("web.services.candidate", "_view"),
         ("sqlalchemy.orm.session.Session", "flush"),
         ("sqlalchemy.orm.session.SessionTransaction", "commit"),
         ("web.blueprints.api", "_session_json")]


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
        fn = owner.__dict__.get(name)
        if fn is None:  # a step of another version of the code
            continue
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


def measure(backend: str, url: str | None, sessions: int, seed: int) -> dict:
    """Server time per answer (ms) and the step breakdown of one run."""
    with tempfile.TemporaryDirectory() as tmp, \
            database(backend, url, Path(tmp), 2 * sessions + 2) as (db_url, tokens):
        app = create_app({"DATABASE_URL": db_url, "TESTING": True, "RATELIMIT_ENABLED": False})
        engine = app.extensions["proficio.db"].engine
        statements = [0]
        event.listen(engine, "before_cursor_execute",
                     lambda *a, **k: statements.__setitem__(0, statements[0] + 1))
        run_sessions(app, tokens[:1], seed, lambda t, c, f: None)  # warm-up: caches, imports
        # the application's own time per answer: the WSGI call, from the environ to the
        # response (what the test client adds — building the request, wrapping the response —
        # is not the server's work); `times` below is the whole test-client call, as before
        wsgi: list[float] = []
        inner = app.wsgi_app

        def timed_wsgi(environ, start_response):
            t0 = time.perf_counter()
            try:
                return inner(environ, start_response)
            finally:
                if environ["PATH_INFO"].endswith("/responses"):
                    wsgi.append(time.perf_counter() - t0)
        app.wsgi_app = timed_wsgi
        times: list[float] = []
        cpu: list[float] = []
        final: list[bool] = []
        starts: list[float] = []
        statements[0] = 0
        n = run_sessions(app, tokens[1:1 + sessions], seed,
                         lambda t, c, f: (times.append(t), cpu.append(c), final.append(f)),
                         starts.append)
        per_answer = statements[0] / n
        app.wsgi_app = inner
        wsgi_ms = np.array(wsgi) * 1e3
        spent: dict[str, float] = defaultdict(float)
        total: list[float] = []
        with step_timers(spent):
            m = run_sessions(app, tokens[1 + sessions:1 + 2 * sessions], seed,
                             lambda t, c, f: total.append(t))
        engine.dispose()
    ms = np.array(times) * 1e3
    last = np.array(final, dtype=bool)
    whole = sum(total)
    return {"answers": n, "median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
            "start_median": float(np.median(starts)) * 1e3,
            "last_median": float(np.median(ms[last])),
            "other_median": float(np.median(ms[~last])),
            "p99": float(np.percentile(ms, 99)), "statements": per_answer,
            "wsgi_median": float(np.median(wsgi_ms)), "wsgi_p99": float(np.percentile(wsgi_ms, 99)),
            "cpu": float(np.median(cpu)) * 1e3,
            "steps_mean_ms": whole / m * 1e3,
            "steps": {k: v / m * 1e3 for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}}


def show(r: dict, label: str) -> None:
    print(f"{label}: {r['answers']} answers; server time per answer median {r['median']:.2f} "
          f"ms, p90 {r['p90']:.2f} ms, p99 {r['p99']:.2f} ms; this process's CPU time per "
          f"answer median {r['cpu']:.2f} ms; {r['statements']:.1f} SQL statements per answer "
          f"(session starts included)")
    if "wsgi_median" in r:
        print(f"  the application's own time per answer (the WSGI call, without the test "
              f"client): median {r['wsgi_median']:.2f} ms, p99 {r['wsgi_p99']:.2f} ms")
    if "start_median" in r:
        print(f"  median: session start {r['start_median']:.2f} ms, last answer of a test (stores "
              f"the results) {r['last_median']:.2f} ms, other answers {r['other_median']:.2f} ms")
    print(f"  where the time goes (second pass with step timers, mean "
          f"{r['steps_mean_ms']:.2f} ms per answer):")
    for k, v in r["steps"].items():
        print(f"    {k:38s} {v:6.2f} ms  {100 * v / r['steps_mean_ms']:5.1f} %")


def export_tree(rev: str, dest: Path) -> None:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "irt", "engine", "item_bank",
                           "web"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--url", help="PostgreSQL URL (default: $DATABASE_URL)")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--compare", metavar="REV", help="also run the code of commit REV, "
                    "alternating rounds in child processes")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.json:
        print(json.dumps(measure(args.backend, args.url, args.sessions, args.seed)))
        return
    if not args.compare:
        show(measure(args.backend, args.url, args.sessions, args.seed), args.backend)
        return
    cmd = [sys.executable, __file__, "--backend", args.backend, "--sessions",
           str(args.sessions), "--seed", str(args.seed), "--json"]
    if args.url:
        cmd += ["--url", args.url]
    runs: dict[str, list[dict]] = {args.compare: [], "this tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        export_tree(args.compare, Path(tmp))
        for _ in range(args.rounds):
            for label, tree in ((args.compare, tmp), ("this tree", str(ROOT))):
                env = {**os.environ, "PYTHONPATH": tree}
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
                runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for label, rs in runs.items():
        for r in rs:
            show(r, f"{args.backend}, {label}")
    med = {k: float(np.median([r["median"] for r in rs])) for k, rs in runs.items()}
    p99 = {k: float(np.median([r["p99"] for r in rs])) for k, rs in runs.items()}
    cpu = {k: float(np.median([r["cpu"] for r in rs])) for k, rs in runs.items()}
    app_ms = {k: float(np.median([r["wsgi_median"] for r in rs])) for k, rs in runs.items()}
    print(f"median server time per answer: {args.compare} {med[args.compare]:.2f} ms, this "
          f"tree {med['this tree']:.2f} ms (ratio {med[args.compare] / med['this tree']:.2f}); "
          f"p99 {p99[args.compare]:.2f} → {p99['this tree']:.2f} ms; CPU time per answer "
          f"{cpu[args.compare]:.2f} → {cpu['this tree']:.2f} ms (ratio "
          f"{cpu[args.compare] / cpu['this tree']:.2f}); the application's own time (WSGI "
          f"call) {app_ms[args.compare]:.2f} → {app_ms['this tree']:.2f} ms")


if __name__ == "__main__":
    main()
