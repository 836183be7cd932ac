"""The Flask application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from web.config import Settings, UnsafeConfiguration
from web.converters import DatabaseId
from web.db import Database

log = logging.getLogger(__name__)
#: Read from the environment into the app config unless given: outgoing e-mail (web.mail) and
#: the invitation reminders (web.services.invitations).
MAIL_SETTINGS = ("MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USERNAME", "MAIL_PASSWORD",
                 "MAIL_FROM", "PROFICIO_REMINDER_HOURS")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides Flask settings; ``DATABASE_URL`` in it overrides the
    environment. Refuses unsafe production settings and a database schema that is behind."""
    config = dict(config or {})
    settings = Settings.from_env()
    problems = settings.problems()
    if problems:
        raise UnsafeConfiguration("refusing to start in production: " + "; ".join(problems))
    settings = settings.resolved()
    app = Flask(__name__, instance_path=str(settings.instance), instance_relative_config=False)
    app.url_map.converters["int"] = DatabaseId  # ids beyond the database's range: 404
    app.config.update(
        SECRET_KEY=settings.secret_key,
        PROFICIO_SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=settings.max_upload_mb * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        PROFICIO_BASE_URL=settings.base_url,
        PROFICIO_QUEUE_URL=settings.queue_url,
        MAIL_SERVER=settings.mail_server, MAIL_PORT=settings.mail_port,
        MAIL_USE_TLS=settings.mail_use_tls, MAIL_USERNAME=settings.mail_username,
        MAIL_PASSWORD=settings.mail_password, MAIL_FROM=settings.mail_from,
        OIDC_ISSUER=settings.oidc_issuer, OIDC_CLIENT_ID=settings.oidc_client_id,
        OIDC_CLIENT_SECRET=settings.oidc_client_secret,
        OIDC_PROVIDER_NAME=settings.oidc_provider_name,
    )
    app.config.update(config)
    # the monitor job after completed sessions: on unless configured off; test apps opt in
    app.config.setdefault("PROFICIO_MONITOR_AFTER_SESSION",
                          settings.monitor_after_session and not app.config.get("TESTING"))
    if settings.trusted_proxies:
        # werkzeug's ProxyFix: take the client address and scheme from the trusted proxies'
        # X-Forwarded-* headers (only as many hops as configured, so clients cannot spoof them)
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=0)  # type: ignore[method-assign]
    url = app.config.get("DATABASE_URL", settings.database_url)
    db = Database(url, check=app.config.get("PROFICIO_CHECK_SCHEMA", True))
    db.init_app(app)
    from web import observability

    observability.init_app(app, db.engine)  # first: request ids and timing wrap everything

    from web import input_guard, security

    security.init_app(app)
    input_guard.init_app(app)
    from web.rendering import markdown, markdown_inline

    app.jinja_env.filters["markdown"] = markdown
    app.jinja_env.filters["markdown_inline"] = markdown_inline
    from web import i18n

    i18n.init_app(app)
    for key in MAIL_SETTINGS:  # outgoing e-mail (web.mail): from the environment unless given
        if key not in app.config and os.environ.get(key):
            app.config[key] = os.environ[key]
    if isinstance(app.config.get("MAIL_USE_TLS"), str):
        app.config["MAIL_USE_TLS"] = app.config["MAIL_USE_TLS"].lower() not in ("0", "false", "no")
    _register_blueprints(app)
    _register_error_handlers(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from web.blueprints import admin, api, auth, candidate, ops, psychometrician, recruiter

    app.register_blueprint(ops.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(candidate.bp)
    app.register_blueprint(recruiter.bp)
    app.register_blueprint(psychometrician.bp)
    app.register_blueprint(admin.bp)
    from web.blueprints import accountability

    accountability.init_app(app)
    api.init_app(app)


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if wants_json():
            body = {"code": exc.code, "status": exc.name, "message": exc.description}
            errors = getattr(exc, "data", {}).get("messages") if hasattr(exc, "data") else None
            if errors:
                body["errors"] = errors
            return jsonify(body), exc.code
        return render_template("error.html", error=exc), exc.code

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database_unavailable(exc: Exception):
        log.error("database error on %s %s: %s", request.method, request.path,
                  type(exc).__name__)
        message = "The service is briefly unavailable. Your answers so far are safe; " \
                  "please try again in a moment."
        if wants_json():
            return jsonify({"code": 503, "status": "Service Unavailable",
                            "message": message}), 503, {"Retry-After": "5"}
        return render_template("unavailable.html", message=message), 503, {"Retry-After": "5"}
