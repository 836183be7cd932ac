"""Fuzz the JSON API from its OpenAPI document (issue 8, full run).

Every operation of ``/api/openapi.json`` gets ``--examples`` generated requests per identity
(anonymous; a candidate with the bearer token of a real session; a recruiter and a
psychometrician of the demo organisation; a recruiter of another organisation — staff signed in,
with the CSRF header) and per generation mode (positive: valid by the document; negative:
violating it). Checks: no 5xx, status code / content type / headers / body conforming to the
document, every status declared explicitly, negative inputs refused. One fresh demo database
per backend (SQLite always; PostgreSQL when ``DATABASE_URL`` points at it). In-process WSGI calls
(no sockets), so the figures measure the application, not a network.

Run from the repository root::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    .venv/bin/python benchmarks/bench_fuzz_api.py --examples 100

Exit status 1 when any check failed. Uses schemathesis (Hatfield-Dodds & Dygalo 2022).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemathesis import GenerationMode

from tests.reliability.fuzz import FuzzReport, Identity, fuzz, login
from tests.web.conftest import WEB_BACKENDS, new_site


def run_backend(backend: str, examples: int, seed: int) -> tuple[FuzzReport, float]:
    with tempfile.TemporaryDirectory() as folder, new_site(backend, Path(folder)) as site:
        app = site.app()
        token, other_token = site.invite(2)
        assessment_id = site.sql("SELECT MIN(id) FROM assessments")[0][0]
        started = app.test_client().post("/api/v1/sessions", json={"invitation": token}).json
        invitation_id = site.sql("SELECT MIN(id) FROM invitations")[0][0]
        identities = [
            Identity("anonymous", app.test_client(), body_overrides={"invitation": other_token}),
            Identity("candidate", app.test_client(),
                     {"Authorization": f"Bearer {started['token']}"},
                     {"session_id": started["session_id"]}),
        ]
        staff = {"recruiter": site.info.credentials("recruiter"),
                 "psychometrician": site.info.credentials("psychometrician")}
        for name, cred in staff.items():
            c = app.test_client()
            csrf = login(c, cred.email, cred.password)
            identities.append(Identity(name, c, {"X-CSRFToken": csrf},
                                       {"session_id": started["session_id"],
                                        "invitation_id": invitation_id, "job_id": 1},
                                       {"assessment_id": assessment_id}))
        c = app.test_client()
        csrf = login(c, "recruiter@other.example", site.other_org_password)
        identities.append(Identity("other-org recruiter", c, {"X-CSRFToken": csrf},
                                   {"session_id": started["session_id"],
                                    "invitation_id": invitation_id},
                                   {"assessment_id": assessment_id}))
        t0 = time.perf_counter()
        report = fuzz(app, identities, max_examples=examples, seed=seed,
                      modes=(GenerationMode.POSITIVE, GenerationMode.NEGATIVE))
        return report, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100,
                        help="generated cases per operation, identity and mode")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the app logs refused requests; keep quiet
    os.environ.setdefault("PROFICIO_INSTANCE", tempfile.mkdtemp(prefix="proficio-fuzz-"))
    failed = False
    print("| backend | requests | 2xx | 4xx | 5xx | failed checks | wall s | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    details = []
    for backend in WEB_BACKENDS:
        report, wall = run_backend(backend, args.examples, args.seed)
        n2 = sum(n for c, n in report.statuses.items() if 200 <= c < 300)
        n4 = sum(n for c, n in report.statuses.items() if 400 <= c < 500)
        print(f"| {backend} | {report.n_requests} | {n2} | {n4} | {report.n_5xx} | "
              f"{len(report.failures)} | {wall:.1f} | {report.n_requests / wall:.0f} |")
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(report.statuses.items()))
        details.append(f"{backend} status codes: {codes}")
        details.extend(f"{backend} FAILURE {f}" for f in report.failures)
        failed = failed or bool(report.failures) or report.n_5xx > 0
    print()
    for line in details:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
