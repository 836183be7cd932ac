"""Background jobs (calibrations, feasibility checks of assessment designs, the compromised-item
monitor) on huey.

The queue is embedded by default — a SQLite file in the instance folder, consumed by worker
threads that `proficio serve`/`proficio demo` start in-process — and on Redis when
``PROFICIO_QUEUE_URL=redis://…``, so that dedicated ``proficio worker`` processes on other machines
can run the jobs. A job carries only ids; its state and progress live in the database
(`item_bank.models.CalibrationJob`), so any web worker can show them.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.api import TaskWrapper
from huey.consumer import Consumer, Scheduler
from huey.storage import SqliteStorage

from web.config import instance_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobQueue:
    huey: Huey
    calibrate: TaskWrapper
    maintenance: TaskWrapper
    feasibility: TaskWrapper
    monitor: TaskWrapper


@functools.cache
def queue() -> JobQueue:
    """The process's job queue, built from ``PROFICIO_QUEUE_URL`` / the instance folder."""
    url = os.environ.get("PROFICIO_QUEUE_URL") or ""
    if url.startswith(("redis://", "rediss://")):
        huey: Huey = RedisHuey("proficio", url=url)
    else:
        folder = instance_folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") \
            else str(Path(folder) / "jobs.sqlite3")
        huey = _EmbeddedHuey("proficio", filename=path)
    return JobQueue(huey, huey.task(name="calibrate")(_run_calibration),
                    huey.periodic_task(crontab(minute="*"), name="maintenance")(_maintenance),
                    huey.task(name="feasibility")(_run_feasibility),
                    huey.task(name="monitor")(_run_monitor))


class _ForkSafeStorage(SqliteStorage):
    """huey's SQLite storage that can be closed for a fork with its lock held."""

    _conn: Any  # the connection huey opens lazily (None when closed)

    def close_for_fork(self) -> None:
        """Wait until no thread is inside SQLite (huey's storage lock), keep the lock (released
        by `after_fork`) and close the connection."""
        self.lock.acquire()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def after_fork(self) -> None:
        self.lock.release()


class _EmbeddedHuey(SqliteHuey):
    storage_class = _ForkSafeStorage


def _before_fork() -> None:
    """Close this process's connection to the embedded queue before it forks (gunicorn's master
    spawning a worker). SQLite keeps its lock state per process, in memory: a child forked while
    a thread here is inside a transaction (the scheduler reads the schedule under ``BEGIN
    EXCLUSIVE`` every second) inherits a lock it does not hold, and every connection the child
    opens to the file then fails with "database is locked" — the worker's job queue and its
    ``/readyz`` broken for its lifetime (seen in CI; tests/ops/test_endpoints.py reproduces it).
    SQLite's rule: no open connection across a fork (sqlite.org/howtocorrupt.html, 2.6; the
    same failure and remedy: python-diskcache pull request 299). The parent's threads reopen on
    their next use."""
    if queue.cache_info().currsize:
        storage = queue().huey.storage
        if isinstance(storage, _ForkSafeStorage):
            storage.close_for_fork()
            _forking.append(storage)


def _after_fork_in_parent() -> None:
    if _forking:
        _forking.pop().after_fork()


def _after_fork_in_child() -> None:
    _forking.clear()  # the parent's storage (its lock held in this copy) is not used here
    queue.cache_clear()


_forking: list[_ForkSafeStorage] = []

# A forked gunicorn worker must not inherit the master's queue: its storage lock is held across
# the fork (above) and its SQLite connection must not cross processes. The child builds its own
# on first use.
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


def _run_calibration(job_id: int, database_url: str, request_id: str | None = None) -> None:
    from web.observability import bind_request_id
    from web.services.calibrations import run_job

    with bind_request_id(request_id):  # the enqueuing request's id, on the job's log records
        log.info("calibration job %s: running", job_id)
        run_job(job_id, database_url)
        log.info("calibration job %s: done", job_id)


def _run_feasibility(check_id: int, database_url: str | None,
                     request_id: str | None = None) -> None:
    from web.observability import bind_request_id
    from web.services.assessment_designs import run_check

    with bind_request_id(request_id):
        log.info("feasibility check %s: running", check_id)
        run_check(check_id, database_url)
        log.info("feasibility check %s: done", check_id)


def _run_monitor(bank_id: int, database_url: str | None, request_id: str | None = None
                 ) -> None:
    """The compromised-item monitor of one bank (`web.services.forensics.monitor_bank`),
    queued once per bank while pending by the answers that complete sessions."""
    from web.observability import bind_request_id
    from web.services.forensics import run_monitor_job

    with bind_request_id(request_id):
        run = run_monitor_job(bank_id, database_url)
        if run is not None and run.new_alarms:
            log.info("monitor bank %s: new alarm(s) on %s", bank_id, ", ".join(run.new_alarms))


@functools.cache
def _maintenance_app() -> Any:
    from web.app import create_app

    return create_app()


def _maintenance() -> None:
    """Every minute: invitation reminders and webhook deliveries (web.services.invitations),
    the erasure of candidates' personal data past their organisation's retention period
    (web.services.privacy), the clean-up of feasibility checks (stale ones failed, old ones
    deleted: web.services.assessment_designs) and calibration jobs whose worker stopped marked
    failed (web.services.calibrations). Reminders and deliveries claim their rows before
    acting, so two schedulers never double-send; an erasure and the clean-ups are idempotent."""
    from web.db import database
    from web.services.assessment_designs import clean_up_checks
    from web.services.calibrations import fail_stale_jobs
    from web.services.invitations import run_maintenance
    from web.services.privacy import erase_expired

    try:
        app = _maintenance_app()
        with app.app_context():
            run = run_maintenance(database().engine)
            erase_expired(database().engine)
            clean_up_checks(database().engine)
            fail_stale_jobs(database().engine)
    except Exception as exc:  # the next minute tries again; the queue must keep running
        log.warning("maintenance skipped: %s: %s", type(exc).__name__, exc)
        return
    if run.timed_out or run.reminders or run.deliveries.delivered or run.deliveries.retried:
        log.info("maintenance: %d session(s) timed out, %d reminder(s), %s", run.timed_out,
                 run.reminders, run.deliveries)


def enqueue_calibration(job_id: int, database_url: str) -> None:
    """Queue a calibration job. A database URL with a password never enters the queue (it may
    be Redis on another machine): the worker then uses its own ``DATABASE_URL``."""
    from web.observability import current_request_id

    queue().calibrate(job_id, _shareable(database_url), current_request_id())


def _shareable(database_url: str) -> str | None:
    """The database URL a queued task may carry: none with a password in it (the worker reads
    its own configuration then)."""
    from sqlalchemy.engine import make_url

    return None if make_url(database_url).password else database_url


def enqueue_feasibility(check_id: int, database_url: str) -> None:
    """Queue the feasibility check of an assessment design (`enqueue_calibration`'s rules for
    the database URL)."""
    from web.observability import current_request_id

    queue().feasibility(check_id, _shareable(database_url), current_request_id())


def enqueue_monitor(bank_id: int, database_url: str, delay: float = 0.0) -> None:
    """Queue the monitor of one bank, to run ``delay`` seconds from now (the caller makes sure
    at most one is pending per bank: `web.services.forensics.mark_pending`); like
    `enqueue_calibration`, a URL with a password stays out of the queue."""
    from web.observability import current_request_id

    args = (bank_id, _shareable(database_url), current_request_id())
    if delay > 0:
        queue().monitor.schedule(args=args, delay=delay)
    else:
        queue().monitor(*args)


class _LaterScheduler(Scheduler):
    """The first periodic run (reminders, webhook deliveries) one minute after start, not while
    the web workers fork and open the queue file (huey's scheduler would run it at once)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_periodic = time.monotonic() + self.periodic_task_seconds


class _EmbeddedConsumer(Consumer):
    scheduler_class = _LaterScheduler


def start_embedded_consumer(workers: int = 1) -> Consumer:
    """Start worker threads in this process (no signal handlers: the host process owns them)."""
    consumer = _EmbeddedConsumer(queue().huey, workers=workers, worker_type="thread",
                                 periodic=True, check_worker_health=False)
    # Consumer.start() would also install signal handlers, taking SIGINT/SIGTERM away from the
    # host (gunicorn's master); start the scheduler and worker threads only.
    consumer.scheduler.start()
    for _, worker in consumer.worker_threads:
        worker.start()
    log.info("embedded job consumer started with %d worker thread(s)", workers)
    return consumer


def run_worker(workers: int = 1, **kwargs: Any) -> None:
    """Run a dedicated consumer in the foreground (``proficio worker``)."""
    queue().huey.create_consumer(workers=workers, worker_type="thread", **kwargs).run()
