"""``proficio serve``: the web app under gunicorn (several workers), and ``proficio worker``.

The job queue is consumed by worker threads started in gunicorn's master process (embedded
mode) unless ``--no-embedded-jobs`` is given — then run ``proficio worker`` processes, which is
the way to scale calibrations out (with ``PROFICIO_QUEUE_URL=redis://…``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication


class ProficioServer(BaseApplication):
    """gunicorn with the app factory; configuration from the command line only."""

    def __init__(self, options: dict[str, Any], embedded_jobs: bool) -> None:
        self.options = options
        self.embedded_jobs = embedded_jobs
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if self.embedded_jobs:
            self.cfg.set("when_ready", _start_jobs)
        self.cfg.set("child_exit", _child_exit)
        self.cfg.set("on_exit", _on_exit)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: one shared path
            self.cfg.set("control_socket_disable", True)  # would clash between two servers

    def load(self) -> Any:
        from web.app import create_app

        app = create_app()
        warm_up_engines(app)
        return app


def warm_up_engines(app: Any) -> None:
    """In each worker, before it accepts requests: the engines of the assessments candidates
    can start now (`web.services.engines.warm_up`); a failure only logs (the first candidate
    then builds the engine, as without a warm-up)."""
    import logging

    from web.db import database
    from web.services.engines import warm_up

    log = logging.getLogger("web.commands.serve")
    try:
        with app.app_context(), database().sessions() as db:
            done = warm_up(db)
        log.info("warm-up: %d assessment engine(s) built in %.2f s (%d left to their first "
                 "candidate)", done.assessments, done.seconds, done.left)
    except Exception as exc:
        log.warning("warm-up failed: %s", exc)


def _start_jobs(_server: Any) -> None:
    from web.jobs import start_embedded_consumer

    start_embedded_consumer()


def _child_exit(_server: Any, worker: Any) -> None:
    from web.observability import mark_process_dead

    mark_process_dead(worker.pid)


_owned_metrics_dir: list[str] = []  # the folder this master created (not an operator's)


def _on_exit(_server: Any) -> None:
    import shutil

    for folder in _owned_metrics_dir:
        shutil.rmtree(folder, ignore_errors=True)


def prepare_observability() -> dict[str, Any]:
    """Metrics in multiprocess mode and the configured log format, set up before the app (and
    with it ``prometheus_client``) is imported; returns gunicorn's logging options. gunicorn's
    own access log is off: it would write candidate tokens from URLs; the app logs each request
    with its route template instead (``proficio.access``)."""
    import tempfile

    from web.config import Settings

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:  # ours: removed by the master on exit (an operator's folder is kept)
        folder = tempfile.mkdtemp(prefix="proficio-metrics-")
        _owned_metrics_dir.append(folder)
    os.makedirs(folder, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from web.observability import configure_logging, logging_config

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return {"accesslog": None, "logger_class": QuietAccessLogger,
            "logconfig_dict": logging_config(settings.log_format, settings.log_level)}


class QuietAccessLogger(glogging.Logger):
    """gunicorn's logger without its access log, which Proficio keeps off (`prepare_observability`):
    passing a logging configuration (``logconfig_dict``) makes gunicorn count access logging as
    enabled, so it built every request's access-log fields (headers, times, status) only for
    the disabled ``gunicorn.access`` logger to drop them — about 0.1 ms of a worker's CPU per
    request, measured with cProfile under `benchmarks/bench_load.py`."""

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def default_workers() -> int:
    return max(2, min(2 * (os.cpu_count() or 1) + 1, 8))


def serve(host: str, port: int, workers: int, embedded_jobs: bool = True,
          threads: int = 1) -> int:
    logging_options = prepare_observability()
    # Fail fast in the parent on a bad configuration or a schema that is behind.
    from web.app import create_app

    create_app()
    options = {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
               "worker_class": "gthread" if threads > 1 else "sync",
               **logging_options, "timeout": 60, "graceful_timeout": 10,
               "limit_request_line": 8190, "limit_request_fields": 100}
    ProficioServer(options, embedded_jobs).run()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the web app with gunicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--threads", type=int, default=1, help="threads per worker (gthread)")
    p.add_argument("--no-embedded-jobs", action="store_true",
                   help="do not run job workers in-process (run `proficio worker` instead)")
    p.set_defaults(handler=lambda a: serve(a.host, a.port, a.workers, not a.no_embedded_jobs,
                                           a.threads))
    w = sub.add_parser("worker", help="run a background job worker (calibrations)")
    w.add_argument("--workers", type=int, default=1, help="worker threads")
    w.set_defaults(handler=_worker)


def _worker(args: argparse.Namespace) -> int:
    from web.config import Settings
    from web.jobs import run_worker
    from web.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    run_worker(args.workers)
    return 0
