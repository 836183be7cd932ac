"""Fault study (fast version): the server is killed with SIGKILL at random moments while
candidates are mid-test, then restarted; the candidates keep retrying their current answer.

Afterwards every acknowledged answer must be in the database exactly once, in its own session,
every session must have continued at its pending question (the stored sequence replays
exactly through the engine) and finished, and every stored θ must equal the engine's re-scoring.
The full study with more candidates is ``benchmarks/bench_load.py``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from loadkit import (
    Client,
    bank_facts,
    drive,
    free_port,
    make_database,
    start_server,
    verify,
)

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("DATABASE_URL", "").startswith(
    ("postgres://", "postgresql")) else [])


def _kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_mid_test_loses_nothing_and_sessions_resume(backend: str, tmp_path: Path):
    n_clients, kills = 6, 2
    url, tokens, cleanup = make_database(backend, tmp_path, n_clients)
    try:
        keys, params = bank_facts(url)
        port = free_port()
        proc = start_server(url, port, 2, tmp_path)
        rng = np.random.default_rng(5)
        clients = [Client(t, float(rng.normal()), int(rng.integers(2**31))) for t in tokens]
        done = threading.Event()

        def run() -> None:
            try:
                asyncio.run(drive(clients, port, keys, params, think=0.02))
            finally:
                done.set()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        chooser = random.Random(11)
        killed = 0
        try:
            while killed < kills and not done.is_set():
                # kill by progress, not by the clock (tests got shorter and answers faster):
                # after a random 3–6 more answers per candidate, each test having at least 16
                due = sum(len(c.acknowledged) for c in clients) \
                    + n_clients * chooser.randint(3, 6)
                while not done.is_set() and sum(len(c.acknowledged) for c in clients) < due:
                    time.sleep(0.01)
                if done.is_set():
                    break
                _kill(proc)
                killed += 1
                time.sleep(chooser.uniform(0.1, 0.6))
                proc = start_server(url, port, 2, tmp_path)
            worker.join(240)
        finally:
            _kill(proc)
        assert killed >= 1, "the test finished before any kill; make it longer"
        checks = verify(url, clients)
        assert [c.status for c in clients] == ["completed"] * n_clients, \
            [(c.status, c.errors) for c in clients]
        assert sum(c.retries for c in clients) > 0  # the kills did hit in-flight requests
        for name in ("lost", "duplicated", "wrong_session", "theta_mismatch",
                     "replay_mismatch"):
            assert checks[name] == 0, checks
        assert checks["sessions_checked"] == n_clients
    finally:
        cleanup()
