"""Can invitation links be enumerated by timing? (issue 8, access)

Sends ``--rounds`` interleaved requests with unknown, expired and withdrawn invitation tokens to
``POST /api/v1/sessions`` and to the candidate welcome page ``GET /t/<token>``, in-process
(Flask test client, no sockets), on each backend (SQLite; PostgreSQL when ``DATABASE_URL``
points at it), and prints the median and quartiles of the response time per kind, the ratio of
medians against the unknown token, and a two-sided Mann–Whitney U test (scipy) of unknown vs
expired. Each unknown token is fresh (a real attacker never repeats a guess). The order of kinds
is rotated every round so drift on a shared machine hits every kind alike.

Run from the repository root::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    .venv/bin/python benchmarks/bench_fuzz_tokens.py --rounds 1000

Rate limiting is switched off for the measurement (with it on, the 31st request of a minute is
a 429 whatever the token).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scipy.stats import mannwhitneyu

from tests.web.conftest import WEB_BACKENDS, new_site

KINDS = ("unknown", "expired", "revoked")


def measure(backend: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as folder, new_site(backend, Path(folder)) as site:
        app = site.app()
        expired, revoked = site.invite(2)
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        site.sql("UPDATE invitations SET expires_at = :p WHERE id = (SELECT MAX(id) - 1 FROM "
                 "invitations)", p=past)
        site.sql("UPDATE invitations SET status = 'revoked' WHERE id = (SELECT MAX(id) FROM "
                 "invitations)")
        c = app.test_client()
        calls = {"api": lambda t: c.post("/api/v1/sessions", json={"invitation": t}),
                 "welcome": lambda t: c.get(f"/t/{t}")}
        out: dict[str, dict[str, list[float]]] = {k: {kind: [] for kind in KINDS}
                                                 for k in calls}
        for route, call in calls.items():
            for _ in range(20):  # warm-up (caches, connection pool)
                call(secrets.token_urlsafe(32))
                call(expired)
            for r in range(rounds):
                order = KINDS[r % 3:] + KINDS[:r % 3]
                for kind in order:
                    token = {"unknown": secrets.token_urlsafe(32), "expired": expired,
                             "revoked": revoked}[kind]
                    t0 = time.perf_counter()
                    resp = call(token)
                    out[route][kind].append(time.perf_counter() - t0)
                    want = 404 if kind == "unknown" else 410
                    if resp.status_code != want:
                        raise RuntimeError(f"{route} {kind}: {resp.status_code} != {want}")
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    os.environ.setdefault("PROFICIO_INSTANCE", tempfile.mkdtemp(prefix="proficio-tokens-"))
    print("| backend | route | kind | n | median ms | IQR ms | median / unknown | "
          "Mann-Whitney p (vs unknown) |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in WEB_BACKENDS:
        results = measure(backend, args.rounds)
        for route, by_kind in results.items():
            base = statistics.median(by_kind["unknown"])
            for kind, times in by_kind.items():
                q = statistics.quantiles(times, n=4)
                med = statistics.median(times)
                p = "" if kind == "unknown" else \
                    f"{mannwhitneyu(times, by_kind['unknown']).pvalue:.3f}"
                print(f"| {backend} | {route} | {kind} | {len(times)} | {med * 1e3:.3f} | "
                      f"{q[0] * 1e3:.3f}–{q[2] * 1e3:.3f} | {med / base:.3f} | {p} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
