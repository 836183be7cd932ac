"""Does the sign-in answer take longer for an e-mail that has a staff account? (issue 18)

The security review measured a known e-mail with a wrong password at a median 451 ms and an
unknown one at 19 ms: the password hash was only checked for known addresses. Now an unknown
address is checked against a dummy argon2 hash with the same parameters and both write the same
throttle row (`web.services.accounts.sign_in`).

Method: the real app on a demo database (SQLite file, or PostgreSQL when ``DATABASE_URL`` points
at it), rate limit off, ``POST /login`` through the Flask test client with a CSRF token, wrong
passwords. Known and unknown attempts alternate in random order within each round, so load from
other processes on this shared machine hits both alike; the throttle rows are removed between
rounds (untimed) so that both kinds always start from "no failures yet" — the back-off path is
the same for both anyway. Reported: median and quartiles per kind, the difference of medians as
a share of the overall median (target < 5 %), and a two-sided Mann–Whitney U p-value.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_login_timing.py [--rounds 300]``
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()

    from scipy.stats import mannwhitneyu
    from sqlalchemy import text

    from item_bank.db import create_db_engine, normalize_url
    from item_bank.demo import build_demo_database
    from web.app import create_app

    tmp = tempfile.TemporaryDirectory()
    os.environ.setdefault("PROFICIO_INSTANCE", tmp.name)
    pg = os.environ.get("DATABASE_URL", "")
    schema = None
    if pg.startswith(("postgres://", "postgresql")):
        base = normalize_url(pg)
        schema = f"bench_login_{uuid.uuid4().hex[:8]}"
        admin = create_db_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{base}?options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{Path(tmp.name) / 'bench.sqlite3'}"
    try:
        info = build_demo_database(url, n_invitations=1)
        known = info.credentials("recruiter").email
        app = create_app({"DATABASE_URL": url, "TESTING": True, "RATELIMIT_ENABLED": False})
        db = app.extensions["proficio.db"]
        client = app.test_client()
        token = re.search(rb'name="csrf_token" value="([^"]+)"',
                          client.get("/login").data).group(1).decode()
        rng = random.Random(args.seed)

        def attempt(email: str) -> float:
            t0 = time.perf_counter()
            r = client.post("/login", data={"csrf_token": token, "email": email,
                                            "password": "wrong-password-123"})
            elapsed = time.perf_counter() - t0
            assert r.status_code == 401, r.status_code
            return elapsed

        for _ in range(5):  # warm-up: caches, connections, the dummy hash
            attempt(known)
            attempt(f"warm-{uuid.uuid4().hex[:8]}@demo.example")
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        for _ in range(args.rounds):
            with db.engine.begin() as conn:
                conn.execute(text("DELETE FROM login_throttles"))
            kinds = ["known", "unknown"]
            rng.shuffle(kinds)
            for kind in kinds:
                email = known if kind == "known" else \
                    f"nobody-{uuid.uuid4().hex[:10]}@demo.example"
                times[kind].append(attempt(email))
        db.engine.dispose()
    finally:
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        tmp.cleanup()

    backend = "postgresql" if schema else "sqlite"
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    q = {k: statistics.quantiles([x * 1000 for x in v], n=4) for k, v in times.items()}
    overall = statistics.median([x for v in times.values() for x in v]) * 1000
    diff = med["known"] - med["unknown"]
    p = mannwhitneyu(times["known"], times["unknown"], alternative="two-sided").pvalue
    print(f"backend {backend}, {args.rounds} interleaved rounds (wrong password each time)")
    print("| kind | median ms | quartiles ms |")
    print("|---|---|---|")
    for k in ("known", "unknown"):
        print(f"| {k} e-mail | {med[k]:.1f} | {q[k][0]:.1f} – {q[k][2]:.1f} |")
    print(f"difference of medians {diff:+.2f} ms = {100 * diff / overall:+.2f} % of the "
          f"median {overall:.1f} ms (target |·| < 5 %); ratio known/unknown "
          f"{med['known'] / med['unknown']:.3f}; Mann–Whitney p = {p:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
