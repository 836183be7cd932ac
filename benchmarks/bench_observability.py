"""Cost of the observability layer per request: request ids, Prometheus metrics, the JSON access
log (written to /dev/null through the production formatter and filters).

Two apps on the same demo database — one as built by `create_app`, one with the observability
hooks removed — serve the same requests, interleaved round by round so that load from other
processes on this shared machine hits both alike. Reported: median time per request of each and
the ratio, for ``GET /healthz`` (the hooks are most of the work) and for a candidate answer
(``POST /api/v1/sessions/<id>/responses``: commit + engine step + item selection).

There is no peer here: the comparison is Proficio with and without its own instrumentation.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/python benchmarks/bench_observability.py [--requests 2000] [--sessions 6]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _strip(app) -> None:  # type: ignore[no-untyped-def]
    from web import observability as obs

    ours = {obs._start_request, obs._finish_request, obs._end_request}
    for table in (app.before_request_funcs, app.after_request_funcs,
                  app.teardown_request_funcs):
        for key, funcs in table.items():
            table[key] = [f for f in funcs if f not in ours]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="GET /healthz per app")
    parser.add_argument("--sessions", type=int, default=6, help="complete sessions per app")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="proficio-bench-obs-"))
    os.environ["PROFICIO_INSTANCE"] = str(folder / "instance")
    from item_bank.demo import build_demo_database
    from web import observability as obs
    from web.app import create_app

    url = f"sqlite:///{folder / 'demo.sqlite3'}"
    info = build_demo_database(url, n_invitations=2 * args.sessions)
    sink = open(os.devnull, "w")  # noqa: SIM115 - kept for the whole run
    handler = logging.StreamHandler(sink)
    handler.setFormatter(obs.JsonFormatter())
    handler.addFilter(obs.RequestIdFilter())
    handler.addFilter(obs.RedactingFilter())
    logging.getLogger().handlers = [handler]
    logging.getLogger().setLevel(logging.INFO)

    config = {"DATABASE_URL": url, "RATELIMIT_ENABLED": False}
    apps = {"instrumented": create_app(config), "bare": create_app(config)}
    _strip(apps["bare"])
    clients = {k: a.test_client() for k, a in apps.items()}

    health: dict[str, list[float]] = {k: [] for k in apps}
    per_round = max(1, args.requests // args.rounds)
    for _ in range(args.rounds):
        for name, client in clients.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                client.get("/healthz")
                health[name].append(time.perf_counter() - t0)

    answers: dict[str, list[float]] = {k: [] for k in apps}
    tokens = list(info.invitation_tokens)
    for s in range(args.sessions):
        for name, client in clients.items():
            start = client.post("/api/v1/sessions", json={"invitation": tokens.pop()}).get_json()
            bearer = {"Authorization": f"Bearer {start['token']}"}
            view = start
            while view["status"] == "in_progress":
                body = {"item_id": view["pending_item"]["item_id"], "answer": "abcd"[s % 4]}
                t0 = time.perf_counter()
                r = client.post(f"/api/v1/sessions/{start['session_id']}/responses", json=body,
                                headers=bearer)
                answers[name].append(time.perf_counter() - t0)
                view = r.get_json()

    def med_us(xs: list[float]) -> float:
        return statistics.median(xs) * 1e6

    print("Observability overhead (shared 2-core machine; medians; threads pinned to 1)")
    for label, table in (("GET /healthz", health), ("POST answer", answers)):
        inst, bare = med_us(table["instrumented"]), med_us(table["bare"])
        print(f"  {label:13s} instrumented {inst:9.1f} µs   bare {bare:9.1f} µs   "
              f"ratio {inst / bare:5.2f}   (+{inst - bare:.1f} µs; n = "
              f"{len(table['instrumented'])} / {len(table['bare'])})")
    for a in apps.values():
        a.extensions["proficio.db"].engine.dispose()
    sink.close()


if __name__ == "__main__":
    main()
