"""Operations endpoints for load balancers, orchestrators and Prometheus (no login).

* ``GET /healthz`` — the process is up and serving (no database call): 200 ``{"status": "ok"}``.
* ``GET /readyz`` — ready for traffic: the database answers, its schema is at the code's
  migration head, and the job queue answers. 200 when all pass, else 503 with the failing check
  named (never a host name, URL or password).
* ``GET /metrics`` — Prometheus text exposition (`web.observability`). Who may read it:
  with ``PROFICIO_METRICS_TOKEN`` set, only a request carrying ``Authorization: Bearer <token>``
  (compared in constant time); without a token, anyone outside production, and in production
  only when ``PROFICIO_METRICS_PUBLIC=1`` says the network already restricts the path
  (otherwise 403).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from web.config import Settings
from web.db import database
from web.observability import exposition, readiness

bp = Blueprint("ops", __name__)


def _settings() -> Settings:
    return current_app.config["PROFICIO_SETTINGS"]


@bp.route("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz():
    result = readiness(database().engine, current_app.config.get("PROFICIO_QUEUE_URL"))
    body = {"status": "ready" if result.ready else "unavailable",
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in result.checks}}
    if result.ready:
        return jsonify(body)
    return jsonify(body), 503, {"Retry-After": "5"}


def _metrics_allowed(header: str) -> tuple[bool, int, str]:
    settings = _settings()
    token = settings.metrics_token
    if token:
        given = header[7:].strip() if header.startswith("Bearer ") else ""
        if given and hmac.compare_digest(given.encode(), token.encode()):
            return True, 200, ""
        return False, 401, "metrics need 'Authorization: Bearer <PROFICIO_METRICS_TOKEN>'"
    if settings.env == "production" and not settings.metrics_public:
        return False, 403, ("metrics are not public in production: set PROFICIO_METRICS_TOKEN "
                            "(or PROFICIO_METRICS_PUBLIC=1 behind a restricting proxy)")
    return True, 200, ""


@bp.route("/metrics")
def metrics():
    allowed, status, message = _metrics_allowed(request.headers.get("Authorization", ""))
    if not allowed:
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {}
        return Response(message + "\n", status=status, mimetype="text/plain", headers=headers)
    payload, content_type = exposition()
    return Response(payload, content_type=content_type)
