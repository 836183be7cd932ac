"""Item bank throughput: answers committed per second and bank loading, SQLite vs PostgreSQL.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/item_bank_throughput.py [--threads 1 4] [--answers 200] \\
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Each writer thread answers for its own test session, one committed transaction per answer (what
the web tier does: every answer is committed before the next item is served), through
`item_bank.repository.record_response`. Also times the shipped-bank import, `load_bank` and the
long-format response export. There is no peer for this layer; the two backends are the
comparison. PostgreSQL runs in a throw-away schema that is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from item_bank import db  # noqa: E402
from item_bank import repository as repo  # noqa: E402
from item_bank.shipped import import_shipped  # noqa: E402


def _engine(backend: str, pg_url: str, folder: str):
    if backend == "sqlite":
        eng = db.create_db_engine(f"sqlite:///{folder}/bench-{uuid.uuid4().hex[:6]}.sqlite3")
        return eng, eng.dispose
    schema = f"proficio_bench_{uuid.uuid4().hex[:8]}"
    admin = db.create_db_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = db.create_db_engine(pg_url, connect_args={"options": f"-csearch_path={schema}"},
                         pool_size=16)

    def cleanup() -> None:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return eng, cleanup


def run(backend: str, threads: int, answers: int, pg_url: str, folder: str) -> dict:
    eng, cleanup = _engine(backend, pg_url, folder)
    try:
        db.upgrade(eng)
        with db.transaction(eng) as s:
            org = repo.create_organisation(s, "bench", "Bench")
            repo.create_bank(s, org, "bench", "Bench bank")  # the database's only bank
        t0 = time.perf_counter()
        with db.transaction(eng) as s:
            import_shipped(s)
        t_import = time.perf_counter() - t0
        with db.transaction(eng) as s:
            org = repo.find_bank(s, None).organisation
            skills = sorted({m.skill for m in repo.load_bank(s).items})
            assessment = repo.create_assessment(s, org, "b", "B", {"skills": skills})
            sessions = []
            for inv in repo.create_invitations(s, assessment, threads):
                row, _ = repo.start_session(s, repo.find_invitation(s, inv.token))
                sessions.append(row.id)
            item_ids = list(repo.load_bank(s).bank.item_ids)
        per = min(answers, len(item_ids))
        errors: list[BaseException] = []

        def writer(sid: int) -> None:
            try:
                for pos in range(1, per + 1):
                    with db.transaction(eng) as s:
                        repo.record_response(s, sid, item_ids[(sid * 7 + pos) % len(item_ids)],
                                             pos, "a", pos % 2, latency_ms=1000)
            except BaseException as exc:
                errors.append(exc)

        ts = [threading.Thread(target=writer, args=(sid,)) for sid in sessions]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_write = time.perf_counter() - t0
        if errors:
            raise errors[0]
        t0 = time.perf_counter()
        with db.transaction(eng, write=False) as s:
            loaded = repo.load_bank(s)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        with db.transaction(eng, write=False) as s:
            out = repo.export_responses(s)
        t_export = time.perf_counter() - t0
        n = threads * per
        if out.data.n_responses != n:
            raise RuntimeError(f"lost answers: stored {out.data.n_responses} of {n}")
        return {"backend": backend, "threads": threads, "answers": n,
                "answers_per_s": n / t_write, "import_s": t_import, "load_ms": 1000 * t_load,
                "n_items": len(loaded.bank), "export_ms": 1000 * t_export}
    finally:
        cleanup()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--answers", type=int, default=200, help="answers per writer thread")
    ap.add_argument("--postgres", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for backend in ("sqlite", "postgresql"):
            for k in args.threads:
                rows.append(run(backend, k, args.answers, args.postgres, folder))
    print("| backend | writer threads | answers | committed answers/s | import shipped bank (s) "
          "| load_bank (ms) | export responses (ms) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['threads']} | {r['answers']} | {r['answers_per_s']:.0f} | "
              f"{r['import_s']:.2f} | {r['load_ms']:.1f} ({r['n_items']} items) | "
              f"{r['export_ms']:.1f} |")
    base = {r["threads"]: r["answers_per_s"] for r in rows if r["backend"] == "sqlite"}
    for r in rows:
        if r["backend"] == "postgresql":
            print(f"PostgreSQL / SQLite answers/s at {r['threads']} threads: "
                  f"{r['answers_per_s'] / base[r['threads']]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
