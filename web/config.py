"""Configuration from environment variables only (with safe defaults for the embedded demo).

* ``PROFICIO_ENV`` (``development``): ``production`` enables the strict checks below.
* ``DATABASE_URL`` (SQLite file in the instance folder): SQLAlchemy/PostgreSQL URL.
* ``PROFICIO_INSTANCE`` (``./instance``): folder of the SQLite file, demo secret and job queue.
* ``SECRET_KEY`` (random, kept in ``instance/secret_key``): signs cookies and CSRF tokens.
* ``PROFICIO_QUEUE_URL`` (SQLite file in the instance folder): ``redis://…`` for a shared queue.
* ``RATELIMIT_STORAGE_URI`` (``memory://``): ``redis://…`` so limits hold across workers.
* ``PROFICIO_RATELIMIT`` (``1``): ``0`` switches rate limiting off (load tests from one address).
* ``PROFICIO_MAX_UPLOAD_MB`` (``10``): largest request body, uploads included.
* ``PROFICIO_BASE_URL`` (``http://127.0.0.1:5000``): used to print candidate links.
* ``SESSION_COOKIE_SECURE`` (``1`` in production, else ``0``): cookies only over HTTPS.
* ``PROFICIO_METRICS_TOKEN`` (unset): when set, ``/metrics`` needs ``Authorization: Bearer <it>``.
* ``PROFICIO_METRICS_PUBLIC`` (``0``): ``1`` serves ``/metrics`` without a token in production
  (only when the network already restricts it); otherwise production answers 403 without a token.
* ``PROFICIO_LOG_FORMAT`` (``json`` in production, else ``text``): JSON lines or plain text.
* ``PROFICIO_LOG_LEVEL`` (``INFO``): level of the server and worker logs.
* ``MAIL_SERVER`` (unset), ``MAIL_PORT`` (``587``), ``MAIL_USE_TLS`` (``1``: STARTTLS),
  ``MAIL_USERNAME``, ``MAIL_PASSWORD`` (unset: no SMTP login), ``MAIL_FROM``
  (``proficio@<host of PROFICIO_BASE_URL>``): outgoing e-mail (password resets, invitations).
  Without ``MAIL_SERVER`` no e-mail is sent and the reset page says so.
* ``PROFICIO_MONITOR_AFTER_SESSION`` (``1``; off in apps built with ``TESTING``): a completed
  session queues the compromised-item monitor of its bank (`web.services.forensics`).
* ``OIDC_ISSUER``, ``OIDC_CLIENT_ID``, ``OIDC_CLIENT_SECRET`` (unset): sign-in through an
  OpenID Connect provider (discovery at ``<issuer>/.well-known/openid-configuration``);
  ``OIDC_PROVIDER_NAME`` (``single sign-on``) labels the button.

In production the app refuses to start with a missing or weak ``SECRET_KEY``
(`UnsafeConfiguration`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "testing", "production")
MIN_SECRET_LENGTH = 32
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class UnsafeConfiguration(RuntimeError):
    """A production setting that must not be used."""


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip()
    value = value.upper() if allowed == LOG_LEVELS else value.lower()
    if value not in allowed:
        raise UnsafeConfiguration(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _count(env: Mapping[str, str], name: str) -> int:
    try:
        value = int(env.get(name, "0") or 0)
    except ValueError:
        raise UnsafeConfiguration(f"{name} must be a whole number") from None
    if not 0 <= value <= 5:
        raise UnsafeConfiguration(f"{name} must be between 0 and 5, got {value}")
    return value


def _mail_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``MAIL_*``: the SMTP relay for outgoing e-mail (see `web.mail`)."""
    try:
        port = int(env.get("MAIL_PORT") or 587)
    except ValueError:
        raise UnsafeConfiguration("MAIL_PORT must be a whole number") from None
    if not 0 < port < 65536:
        raise UnsafeConfiguration(f"MAIL_PORT must be between 1 and 65535, got {port}")
    host = urlsplit(env.get("PROFICIO_BASE_URL") or "http://127.0.0.1:5000").hostname
    sender = (env.get("MAIL_FROM") or "").strip() or f"proficio@{host or 'localhost'}"
    if "@" not in sender or any(ch in sender for ch in "\r\n"):
        raise UnsafeConfiguration(f"MAIL_FROM must be an e-mail address, got {sender!r}")
    return {"mail_server": (env.get("MAIL_SERVER") or "").strip(), "mail_port": port,
            "mail_use_tls": _flag(env.get("MAIL_USE_TLS"), True),
            "mail_username": env.get("MAIL_USERNAME") or "",
            "mail_password": env.get("MAIL_PASSWORD") or "", "mail_from": sender}


def _oidc_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``OIDC_*``: the OpenID Connect provider for single sign-on (see `web.blueprints.auth`)."""
    issuer = (env.get("OIDC_ISSUER") or "").strip().rstrip("/")
    client_id = (env.get("OIDC_CLIENT_ID") or "").strip()
    if bool(issuer) != bool(client_id):
        raise UnsafeConfiguration("OIDC_ISSUER and OIDC_CLIENT_ID must be set together")
    if issuer and not issuer.startswith(("https://", "http://")):
        raise UnsafeConfiguration(f"OIDC_ISSUER must be an http(s) address, got {issuer!r}")
    return {"oidc_issuer": issuer, "oidc_client_id": client_id,
            "oidc_client_secret": env.get("OIDC_CLIENT_SECRET") or "",
            "oidc_provider_name": (env.get("OIDC_PROVIDER_NAME") or "").strip()
            or "single sign-on"}


def instance_folder(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("PROFICIO_INSTANCE") or "instance").resolve()


def _instance_secret(folder: Path) -> str:
    """A random key kept in the instance folder, so every worker of the demo shares it."""
    path = folder / "secret_key"
    folder.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str | None
    instance: Path
    secret_key: str
    secret_from_env: bool
    queue_url: str | None
    ratelimit_storage_uri: str
    ratelimit_enabled: bool
    max_upload_mb: int
    base_url: str
    session_cookie_secure: bool
    metrics_token: str = ""
    metrics_public: bool = False
    log_format: str = "text"
    log_level: str = "INFO"
    trusted_proxies: int = 0
    monitor_after_session: bool = True
    mail_server: str = ""
    mail_port: int = 587
    mail_use_tls: bool = True
    mail_username: str = ""
    mail_password: str = ""
    mail_from: str = ""
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_provider_name: str = "single sign-on"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mode = env.get("PROFICIO_ENV", "development").strip().lower()
        if mode not in ENVIRONMENTS:
            raise UnsafeConfiguration(f"PROFICIO_ENV must be one of {ENVIRONMENTS}, got {mode!r}")
        folder = instance_folder(env)
        secret = env.get("SECRET_KEY") or ""
        try:
            upload = int(env.get("PROFICIO_MAX_UPLOAD_MB", "10"))
        except ValueError:
            raise UnsafeConfiguration("PROFICIO_MAX_UPLOAD_MB must be an integer") from None
        return cls(
            env=mode,
            database_url=env.get("DATABASE_URL") or None,
            instance=folder,
            secret_key=secret,
            secret_from_env=bool(secret),
            queue_url=env.get("PROFICIO_QUEUE_URL") or None,
            ratelimit_storage_uri=env.get("RATELIMIT_STORAGE_URI", "memory://"),
            ratelimit_enabled=_flag(env.get("PROFICIO_RATELIMIT"), True),
            max_upload_mb=upload,
            base_url=env.get("PROFICIO_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
            session_cookie_secure=_flag(env.get("SESSION_COOKIE_SECURE"), mode == "production"),
            metrics_token=env.get("PROFICIO_METRICS_TOKEN") or "",
            metrics_public=_flag(env.get("PROFICIO_METRICS_PUBLIC"), False),
            log_format=_choice(env, "PROFICIO_LOG_FORMAT", LOG_FORMATS,
                               "json" if mode == "production" else "text"),
            log_level=_choice(env, "PROFICIO_LOG_LEVEL", LOG_LEVELS, "INFO"),
            trusted_proxies=_count(env, "PROFICIO_TRUSTED_PROXIES"),
            monitor_after_session=_flag(env.get("PROFICIO_MONITOR_AFTER_SESSION"), True),
            **_mail_settings(env),
            **_oidc_settings(env),
        )

    def problems(self) -> list[str]:
        """Unsafe production settings (empty outside production)."""
        if self.env != "production":
            return []
        found = []
        if not self.secret_from_env:
            found.append("SECRET_KEY is not set (the demo key in the instance folder is not "
                         "for production)")
        elif len(self.secret_key) < MIN_SECRET_LENGTH or self.secret_key in ("dev", "changeme"):
            found.append(f"SECRET_KEY must be a random string of at least {MIN_SECRET_LENGTH} "
                         "characters")
        if not self.session_cookie_secure:
            found.append("SESSION_COOKIE_SECURE is off; production cookies must be HTTPS-only")
        if not self.ratelimit_enabled:
            found.append("PROFICIO_RATELIMIT is off; production needs rate limits")
        if self.oidc_issuer and not self.oidc_issuer.startswith("https://"):
            found.append("OIDC_ISSUER must be an https:// address in production")
        # URI schemes are case-insensitive (RFC 3986 §3.1): MEMORY:// is memory:// too
        if self.ratelimit_storage_uri.strip().lower().startswith("memory://"):
            found.append("RATELIMIT_STORAGE_URI is memory://; limits are per worker (use redis://)")
        return found

    def resolved(self) -> Settings:
        """Fill the demo secret from the instance folder when none was configured."""
        if self.secret_key:
            return self
        return replace(self, secret_key=_instance_secret(self.instance))

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked (for ``proficio config check``)."""
        out = asdict(self)
        out["secret_key"] = "***" if self.secret_key else ""
        out["metrics_token"] = "***" if self.metrics_token else ""
        out["mail_password"] = "***" if self.mail_password else ""
        out["oidc_client_secret"] = "***" if self.oidc_client_secret else ""
        out["instance"] = str(self.instance)
        for key in ("database_url", "queue_url", "ratelimit_storage_uri"):
            if out[key] and "@" in out[key] and ":" in out[key].split("@")[0].split("//")[-1]:
                scheme, rest = out[key].split("//", 1)
                user = rest.split("@")[0].split(":")[0]
                out[key] = f"{scheme}//{user}:***@{rest.split('@', 1)[1]}"
        return out
