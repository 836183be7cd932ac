"""Staff sign-in and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from web import services
from web.security import LOGIN_LIMIT, StaffPrincipal, limiter

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after sign-in (no open redirects)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _home_for(role: str) -> str:
    return url_for("psychometrician.bank") if role == "psychometrician" \
        else url_for("recruiter.candidates")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
def login():  # type: ignore[no-untyped-def]
    next_url = _safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or _home_for(current_user.role))
    if request.method == "GET":
        return render_template("auth/login.html", next=next_url, email="", error=None)
    email = request.form.get("email", "")[:320]
    user = services.authenticate_staff(email, request.form.get("password", "")[:1024])
    if user is None:
        return render_template("auth/login.html", next=next_url, email=email,
                               error="Unknown e-mail or wrong password."), 401
    login_user(StaffPrincipal(user))
    return redirect(next_url or _home_for(user.role))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():  # type: ignore[no-untyped-def]
    services.end_all_staff_sessions(int(current_user.id))
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/")
def index():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(_home_for(current_user.role))
    return redirect(url_for("auth.login"))
