"""Observability: Prometheus metrics, JSON-lines logs with a request id, readiness checks.

Metrics
    Counters and histograms of `prometheus_client`_, exposed by ``/metrics``
    (`web.blueprints.ops`). Under gunicorn every worker is a separate process, so ``proficio
    serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless the operator gives
    one) *before* ``prometheus_client`` is imported; each process then writes its samples to
    memory-mapped files there and ``/metrics`` sums them (the library's multiprocess mode). Labels
    carry only route templates (``/t/<token>``, never the token), HTTP methods and statuses,
    session outcomes and exception class names: no personal data, no item content.

Logs
    `configure_logging` installs one handler on the root logger; with ``json`` every record is one
    JSON object per line (``time``, ``level``, ``logger``, ``message``, ``request_id`` and any
    ``extra`` fields). Each request gets an id (the caller's ``X-Request-ID`` when it is a short
    token of safe characters, otherwise a new random one), echoed in the response header, stamped
    on every record logged while the request runs, and carried into the background jobs it
    enqueues (`bind_request_id`). The access log records the route template, never the path, so
    invitation and session tokens in URLs are not written; `RedactingFilter` also masks bearer
    tokens, passwords, secrets and credentials in URLs wherever they appear in a message.

.. _prometheus_client: https://prometheus.github.io/client_python/multiprocess/
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from web.stderr_logging import CurrentStderrHandler  # noqa: F401 - named by the logging config below

log = logging.getLogger(__name__)
access_log = logging.getLogger("proficio.access")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
UNMATCHED_ROUTE = "<unmatched>"
QUEUE_TIMEOUT_S = 2.0

# Buckets in seconds: page and API latencies (ms to seconds), item selection (sub-ms to 1 s),
# calibration jobs (seconds to an hour).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SELECTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

HTTP_REQUESTS = Counter("proficio_http_requests", "HTTP requests answered.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("proficio_http_request_duration_seconds",
                         "Time from the start of a request to its response.",
                         ["method", "route"], buckets=LATENCY_BUCKETS)
ANSWERS_RECORDED = Counter("proficio_answers_recorded",
                           "Candidate answers committed to the response log.")
SESSIONS_STARTED = Counter("proficio_sessions_started", "Candidate sessions started.")
SESSIONS_FINISHED = Counter("proficio_sessions_finished",
                            "Candidate sessions closed, by outcome (completed, timed_out, …).",
                            ["status"])
ITEM_SELECTION = Histogram("proficio_item_selection_seconds",
                           "Engine time to update the estimate and choose the next item.",
                           buckets=SELECTION_BUCKETS)
CALIBRATION_JOBS = Counter("proficio_calibration_jobs", "Calibration jobs run, by outcome.",
                           ["outcome"])
CALIBRATION_DURATION = Histogram("proficio_calibration_job_duration_seconds",
                                 "Wall time of a calibration job in its worker.",
                                 buckets=JOB_BUCKETS)
DATABASE_ERRORS = Counter("proficio_database_errors",
                          "Errors raised by the database driver, by exception class.", ["error"])

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("proficio_request_id",
                                                                         default=None)


# -- request ids ------------------------------------------------------------------------------


def new_request_id() -> str:
    return secrets.token_hex(8)


def current_request_id() -> str | None:
    """The id of the request (or job) this code runs for, if any."""
    return _request_id.get()


@contextlib.contextmanager
def bind_request_id(request_id: str | None) -> Iterator[str]:
    """Stamp every log record emitted inside the block with ``request_id`` (a new id if None).

    Used by background jobs to continue the id of the request that enqueued them.
    """
    rid = request_id if request_id and _SAFE_REQUEST_ID.match(request_id) else new_request_id()
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


# -- metrics helpers used by the services --------------------------------------------------------


def count_after_commit(session: Session, increment: Callable[[], None]) -> None:
    """Run ``increment`` once ``session`` commits (nothing happens if it rolls back), so a counter
    never counts a write that did not happen."""
    event.listen(session, "after_commit", lambda _s: increment(), once=True)


def answer_recorded(session: Session) -> None:
    count_after_commit(session, ANSWERS_RECORDED.inc)


def session_started(session: Session) -> None:
    count_after_commit(session, SESSIONS_STARTED.inc)


def session_finished(session: Session, status: str) -> None:
    count_after_commit(session, SESSIONS_FINISHED.labels(status).inc)


def calibration_finished(outcome: str, seconds: float) -> None:
    CALIBRATION_JOBS.labels(outcome).inc()
    CALIBRATION_DURATION.observe(seconds)


def watch_engine(engine: Engine) -> None:
    """Count the driver errors raised on ``engine`` (`DATABASE_ERRORS`)."""

    def _on_error(context: Any) -> None:
        DATABASE_ERRORS.labels(type(context.original_exception).__name__).inc()

    event.listen(engine, "handle_error", _on_error)


def multiprocess_mode() -> bool:
    """True when samples go to ``PROMETHEUS_MULTIPROC_DIR`` (decided when the library loaded)."""
    return values.ValueClass is not values.MutexValue


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, summed over processes in multiprocess mode."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook: let the live gauges of a dead worker go."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)


# -- logging --------------------------------------------------------------------------------------

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "request_id", "taskName"}

_REDACTIONS = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"(?i)\b(password|passwd|secret(?:_key)?|token|api[_-]?key|answer_key|key)"
                r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"), r"\1\2***"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
    (re.compile(r"(/t/)[A-Za-z0-9_-]{16,}"), r"\1***"),
)


def redact(message: str) -> str:
    """Mask secrets in a log message: bearer tokens, ``password=…``/``token: …``-style pairs,
    passwords in URLs and invitation tokens in candidate links."""
    for pattern, repl in _REDACTIONS:
        message = pattern.sub(repl, message)
    return message


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request id (``-`` outside requests and jobs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


class RedactingFilter(logging.Filter):
    """Rewrite each record's message through `redact` (arguments merged first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id,
    the ``extra`` fields, and the traceback as ``exc_info`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or _request_id.get() or "-",
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


def logging_config(log_format: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary: one stderr handler on the root logger with the
    request-id and redaction filters; gunicorn's error log goes through it too."""
    formatter: dict[str, Any] = ({"()": f"{__name__}.JsonFormatter"} if log_format == "json"
                                 else {"format": TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"},
                    "redact": {"()": f"{__name__}.RedactingFilter"}},
        "formatters": {"proficio": formatter},
        "handlers": {"stderr": {"class": f"{__name__}.CurrentStderrHandler",
                                "formatter": "proficio", "filters": ["request_id", "redact"]}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "alembic": {"level": "WARNING"},
            "huey": {"level": level},
        },
    }


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Install `logging_config` on this process (``proficio serve`` and ``proficio worker``)."""
    import logging.config

    logging.config.dictConfig(logging_config(log_format, level))


# -- readiness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, and a short reason (no secrets)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)


def check_database(engine: Engine) -> tuple[Check, Check]:
    """``SELECT 1`` on a pooled connection, then the schema revision against the code's head."""
    from item_bank.db import schema_status

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        reason = type(exc).__name__
        return (Check("database", False, f"unreachable ({reason})"),
                Check("schema", False, "not checked"))
    try:
        status = schema_status(engine)
    except Exception as exc:
        return Check("database", True, "reachable"), Check("schema", False, type(exc).__name__)
    if status.up_to_date:
        return Check("database", True, "reachable"), Check("schema", True, "at head")
    found = (f"at revision {status.current}" if status.current else "no Proficio schema")
    return (Check("database", True, "reachable"),
            Check("schema", False, f"{found}, the code needs {status.head}: run "
                                   "`proficio db upgrade`"))


def check_queue(queue_url: str | None) -> Check:
    """Redis queues answer ``PING`` within `QUEUE_TIMEOUT_S`; the embedded SQLite queue opens
    (huey waits up to 5 s for another process's lock). A failure is logged with the driver's
    message; the response names only its type."""
    try:
        if queue_url and queue_url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(queue_url, socket_connect_timeout=QUEUE_TIMEOUT_S,
                                          socket_timeout=QUEUE_TIMEOUT_S)
            try:
                client.ping()
            finally:
                client.close()
            return Check("queue", True, "redis reachable")
        from web.jobs import queue

        queue().huey.storage.queue_size()
        return Check("queue", True, "embedded queue readable")
    except Exception as exc:
        log.warning("queue readiness check failed: %s: %s", type(exc).__name__, exc)
        return Check("queue", False, f"unreachable ({type(exc).__name__})")


def readiness(engine: Engine, queue_url: str | None) -> Readiness:
    return Readiness((*check_database(engine), check_queue(queue_url)))


# -- Flask wiring -----------------------------------------------------------------------------


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


def _start_request() -> None:
    g.request_started = time.perf_counter()
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if _SAFE_REQUEST_ID.match(given) else new_request_id()
    g.request_id = rid
    g.request_id_token = _request_id.set(rid)


def _finish_request(response: Response) -> Response:
    started = g.get("request_started")
    route, method = _route(), request.method
    HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    if started is not None:
        seconds = time.perf_counter() - started
        HTTP_LATENCY.labels(method, route).observe(seconds)
        access_log.info("%s %s %d", method, route, response.status_code,
                        extra={"method": method, "route": route,
                               "status": response.status_code,
                               "duration_ms": round(seconds * 1000, 2)})
    if "request_id" in g:
        response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def _end_request(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context (streamed responses)
            _request_id.reset(token)


def init_app(app: Flask, engine: Engine) -> None:
    """Request ids, request metrics and the access log on ``app``; driver errors of ``engine``."""
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)
    watch_engine(engine)

