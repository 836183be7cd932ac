"""``proficio config check``: the effective configuration (secrets masked), its problems.

Configuration is by environment variables only; `VARIABLES` lists every one with its default
(the operator guide's reference table is checked against it). The command exits 1 when a
production setting is unsafe (`web.config.Settings.problems`, the same checks that stop the app
from starting), or with ``--connect`` when the database, its schema or the job queue is not
ready; 2 when a value cannot be parsed; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from web.cli import CommandError

if TYPE_CHECKING:
    from web.config import Settings


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the `Settings` field it sets, its default."""

    name: str
    field: str | None
    default: str
    description: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable("PROFICIO_ENV", "env", "development",
             "development, testing or production; production enforces the safety checks"),
    Variable("DATABASE_URL", "database_url", "sqlite:///<instance>/proficio.sqlite3",
             "SQLAlchemy URL; postgresql+psycopg://user:password@host/db for production"),
    Variable("PROFICIO_INSTANCE", "instance", "./instance",
             "folder of the SQLite database, the demo secret key and the embedded job queue"),
    Variable("SECRET_KEY", "secret_key", "random, kept in <instance>/secret_key",
             "signs session cookies and CSRF tokens; required (>= 32 characters) in production",
             secret=True),
    Variable("PROFICIO_QUEUE_URL", "queue_url", "SQLite file <instance>/jobs.sqlite3",
             "redis://host:6379/0 for a job queue shared by several machines"),
    Variable("RATELIMIT_STORAGE_URI", "ratelimit_storage_uri", "memory://",
             "redis://… so rate limits hold across workers; memory:// is refused in production"),
    Variable("PROFICIO_RATELIMIT", "ratelimit_enabled", "1",
             "0 switches rate limiting off (load tests only; refused in production)"),
    Variable("PROFICIO_MAX_UPLOAD_MB", "max_upload_mb", "10",
             "largest request body in MB, uploads included"),
    Variable("PROFICIO_BASE_URL", "base_url", "http://127.0.0.1:5000",
             "public address used in candidate links"),
    Variable("SESSION_COOKIE_SECURE", "session_cookie_secure", "1 in production, else 0",
             "send cookies over HTTPS only; refused off in production"),
    Variable("PROFICIO_METRICS_TOKEN", "metrics_token", "unset",
             "when set, /metrics requires 'Authorization: Bearer <token>'", secret=True),
    Variable("PROFICIO_METRICS_PUBLIC", "metrics_public", "0",
             "1 serves /metrics without a token in production (network-restricted path only)"),
    Variable("PROFICIO_LOG_FORMAT", "log_format", "json in production, else text",
             "json: one JSON object per line; text: human-readable lines"),
    Variable("PROFICIO_LOG_LEVEL", "log_level", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Variable("PROFICIO_TRUSTED_PROXIES", "trusted_proxies", "0",
             "number of reverse proxies in front of the app whose X-Forwarded-For/-Proto "
             "headers are trusted (per-address rate limits then see the real client)"),
    Variable("PROFICIO_MONITOR_AFTER_SESSION", "monitor_after_session",
             "1 (off in apps built with TESTING)",
             "1: a completed session queues its bank's compromised-item monitor (at most one "
             "pending job per bank); 0: only `proficio monitor` runs it"),
    Variable("MAIL_SERVER", "mail_server", "unset",
             "SMTP relay for password-reset and invitation e-mails; unset: no e-mail is sent"),
    Variable("MAIL_PORT", "mail_port", "587", "SMTP port of MAIL_SERVER"),
    Variable("MAIL_USE_TLS", "mail_use_tls", "1",
             "1: upgrade the SMTP connection with STARTTLS (required before MAIL_PASSWORD is "
             "sent); 0: plain SMTP (a relay on the same host or network only)"),
    Variable("MAIL_USERNAME", "mail_username", "unset", "SMTP login (unset: no login)"),
    Variable("MAIL_PASSWORD", "mail_password", "unset", "SMTP password", secret=True),
    Variable("MAIL_FROM", "mail_from", "proficio@<host of PROFICIO_BASE_URL>",
             "sender address of outgoing e-mail"),
    Variable("OIDC_ISSUER", "oidc_issuer", "unset",
             "OpenID Connect issuer URL for staff single sign-on (https:// in production); "
             "its /.well-known/openid-configuration is read"),
    Variable("OIDC_CLIENT_ID", "oidc_client_id", "unset",
             "client id registered with the provider (set together with OIDC_ISSUER)"),
    Variable("OIDC_CLIENT_SECRET", "oidc_client_secret", "unset",
             "client secret registered with the provider", secret=True),
    Variable("OIDC_PROVIDER_NAME", "oidc_provider_name", "single sign-on",
             "label of the sign-in button (e.g. the company's identity provider)"),
    Variable("PROFICIO_REMINDER_HOURS", None, "48",
             "an e-mailed invitation not yet started gets one reminder this many hours before "
             "it expires"),
    Variable("PROMETHEUS_MULTIPROC_DIR", None, "a new temporary folder per `proficio serve`",
             "folder where gunicorn workers (and `proficio worker` on the same machine) write "
             "metric samples for /metrics to sum"),
)


def _advice(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """Settings that are allowed but worth knowing about in production."""
    notes: list[str] = []
    if settings.env != "production":
        return notes
    url = settings.database_url or ""
    if not url.startswith(("postgres", "postgresql")):
        notes.append("DATABASE_URL is not PostgreSQL: one machine only (SQLite file)")
    if not (settings.queue_url or "").startswith(("redis://", "rediss://")):
        notes.append("PROFICIO_QUEUE_URL is the embedded SQLite queue: job workers must run on "
                     "this machine")
    if not settings.metrics_token and not settings.metrics_public:
        notes.append("PROFICIO_METRICS_TOKEN is not set: /metrics answers 403 (set a token, or "
                     "PROFICIO_METRICS_PUBLIC=1 behind a proxy that restricts the path)")
    if settings.metrics_public and not settings.metrics_token:
        notes.append("/metrics is public: make sure the proxy does not route it from outside")
    if not settings.mail_server:
        notes.append("MAIL_SERVER is not set: staff cannot reset a forgotten password by "
                     "e-mail (an admin can with `proficio staff set-password`)")
    elif settings.mail_password and not settings.mail_use_tls:
        notes.append("MAIL_USE_TLS is off but MAIL_PASSWORD is set: the SMTP password crosses "
                     "the network in clear")
    if "PROMETHEUS_MULTIPROC_DIR" not in env:
        notes.append("PROMETHEUS_MULTIPROC_DIR is not set: `proficio serve` uses a new "
                     "temporary folder (a `proficio worker` cannot add its job metrics)")
    return notes


def effective(env: Mapping[str, str]) -> list[dict[str, str]]:
    """One row per variable: name, effective value (secrets and URL passwords masked), source."""
    from web.config import Settings

    settings = Settings.from_env(env)
    masked = settings.masked()
    rows = []
    for var in VARIABLES:
        if var.field is None:
            value = env.get(var.name, "") or "(per run)"
        else:
            raw = masked[var.field]
            value = "" if raw is None else str(raw)
            if isinstance(raw, bool):
                value = "1" if raw else "0"
        if var.secret:
            value = "*** (set)" if env.get(var.name) else "(not set)"
        if var.name == "PROFICIO_QUEUE_URL" and not value:
            value = f"sqlite (embedded): {settings.instance / 'jobs.sqlite3'}"
        if var.name == "DATABASE_URL" and not value:
            value = f"sqlite:///{settings.instance / 'proficio.sqlite3'}"
        source = "environment" if env.get(var.name) else "default"
        rows.append({"name": var.name, "value": value, "source": source})
    return rows


def check(args: argparse.Namespace) -> int:
    from web.config import Settings, UnsafeConfiguration

    env = dict(os.environ)
    try:
        settings = Settings.from_env(env)
        rows = effective(env)
    except UnsafeConfiguration as exc:
        raise CommandError(str(exc)) from None
    problems = settings.problems()
    notes = _advice(settings, env)
    checks: list[dict[str, object]] = []
    if args.connect:
        checks = _connect(settings.database_url, settings.queue_url)
    failed = bool(problems) or any(not c["ok"] for c in checks)
    if args.json:
        print(json.dumps({"environment": settings.env, "variables": rows,
                          "problems": problems, "notes": notes, "checks": checks,
                          "ok": not failed}, indent=2))
        return 1 if failed else 0
    width = max(len(v.name) for v in VARIABLES)
    print(f"Proficio configuration ({settings.env})")
    for row in rows:
        print(f"  {row['name']:<{width}}  {row['value']}  [{row['source']}]")
    for c in checks:
        print(f"check {c['name']}: {'ok' if c['ok'] else 'FAILED'} ({c['detail']})")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"UNSAFE: {problem}")
    print("configuration is unsafe for production" if problems else
          "checks failed" if failed else "configuration OK")
    return 1 if failed else 0


def _connect(database_url: str | None, queue_url: str | None) -> list[dict[str, object]]:
    from sqlalchemy.engine import make_url

    from item_bank.db import create_db_engine
    from item_bank.db import database_url as resolve_url
    from web.observability import check_queue, readiness

    url = make_url(resolve_url(database_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).exists():  # connecting would create an empty file
        queue = check_queue(queue_url)
        return [{"name": "database", "ok": False, "detail": "no database file"},
                {"name": "schema", "ok": False, "detail": "not checked"},
                {"name": queue.name, "ok": queue.ok, "detail": queue.detail}]
    engine = create_db_engine(database_url)
    try:
        result = readiness(engine, queue_url)
    finally:
        engine.dispose()
    return [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect the configuration (environment variables)")
    inner = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = inner.add_parser("check", help="print the effective configuration (secrets masked); "
                                       "exit 1 on an unsafe production setting")
    c.add_argument("--connect", action="store_true",
                   help="also check that the database (and its schema) and the job queue answer")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=check)
