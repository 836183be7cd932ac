"""Load study: concurrent candidates over real HTTP against ``proficio serve`` (gunicorn).

Every simulated candidate starts a session with its invitation and answers until the test ends,
answering correctly with probability P(θ_true) under the item's current parameters (a seeded
ability per candidate). Afterwards every acknowledged answer is compared with the database:

* lost: acknowledged by the server but not stored;
* duplicated: stored twice (the unique constraints make this impossible; counted anyway);
* wrong session: stored in a session other than the client's;
* θ mismatch: a session's stored per-skill θ differs from the engine re-scoring its stored
  responses from scratch (replaying them in order must also reproduce every served item).

It reports answers per second and the latency of "submit answer → next question" (p50/p95/p99).

    .venv/bin/python benchmarks/bench_load.py --backend sqlite --clients 50 --workers 4
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/test \\
        .venv/bin/python benchmarks/bench_load.py --backend postgresql --clients 200 --workers 4

Loopback only. ``--think`` adds a pause between answers (seconds, uniform on [0, 2·think]).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadkit import (
    Client,
    bank_facts,
    drive,
    free_port,
    make_database,
    start_server,
    verify,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads per gunicorn worker (`proficio serve --threads`; default: "
                         "the command's default)")
    ap.add_argument("--think", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=20261128)
    args = ap.parse_args()
    if args.backend == "postgresql" and not os.environ.get("DATABASE_URL", "").startswith("postg"):
        sys.exit("set DATABASE_URL to the PostgreSQL server for --backend postgresql")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, tokens, cleanup = make_database(args.backend, folder, args.clients)
        keys, params = bank_facts(url)
        port = free_port()
        proc = start_server(url, port, args.workers, folder, threads=args.threads)
        try:
            rng = np.random.default_rng(args.seed)
            clients = [Client(t, float(rng.normal()), int(rng.integers(2**31)))
                       for t in tokens]
            wall = asyncio.run(drive(clients, port, keys, params, args.think))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        checks = verify(url, clients)
        cleanup()
    lat = np.array([x for c in clients for x in c.latencies]) * 1000
    n_answers = sum(len(c.acknowledged) for c in clients)
    completed = sum(1 for c in clients if c.status == "completed")
    errors = sum(c.errors for c in clients)
    print(f"backend={args.backend} clients={args.clients} gunicorn workers={args.workers} "
          f"threads={args.threads or 'default'} think={args.think}s cpus={os.cpu_count()}")
    print(f"completed sessions: {completed}/{len(clients)}; answers: {n_answers} in {wall:.1f} s "
          f"= {n_answers / wall:.0f} answers/s; errors: {errors}; retries: "
          f"{sum(c.retries for c in clients)}")
    print(f"submit → next question latency ms: p50 {np.percentile(lat, 50):.1f}  "
          f"p95 {np.percentile(lat, 95):.1f}  p99 {np.percentile(lat, 99):.1f}  "
          f"max {lat.max():.1f}")
    sent = np.array([x for c in clients for x in c.sent_at])
    final = np.array([x for c in clients for x in c.final], dtype=bool)
    starting = sent < wall * 0.1
    for label, mask in (("last answer of a test (stores the results)", final),
                        ("other answers", ~final),
                        (f"answers sent in the first 10 % of the run ({wall * 0.1:.1f} s, "
                         f"while sessions start)", starting),
                        ("answers sent later", ~starting)):
        if mask.any():
            part = lat[mask]
            print(f"  {label}: n {part.size}, p50 {np.percentile(part, 50):.1f}  "
                  f"p99 {np.percentile(part, 99):.1f}  max {part.max():.1f} ms; "
                  f"{np.mean(part > np.percentile(lat, 99)):.1%} above the overall p99")
    print("integrity: " + ", ".join(f"{k} {v}" for k, v in checks.items()))
    bad = [c.status for c in clients if c.status != "completed"][:5]
    if bad:
        print("unfinished clients:", bad)
    ok = errors == 0 and completed == len(clients) and not any(
        checks[k] for k in ("lost", "duplicated", "wrong_session", "theta_mismatch",
                            "replay_mismatch"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
