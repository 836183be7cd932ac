"""Security wiring: staff login, CSRF, rate limits, security headers, access decorators.

* Staff sessions: Flask-Login over a signed, ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` in
  production). The cookie carries ``<user id>:<login epoch>``; logging out bumps the epoch, so a
  copied cookie stops working everywhere (server-side invalidation without a session store).
* CSRF: Flask-WTF on every form and every cookie-authenticated API write (``X-CSRFToken``);
  candidate API calls authenticate with a bearer token instead and are exempt.
* Rate limits: Flask-Limiter, storage from ``RATELIMIT_STORAGE_URI`` (Redis for many workers).
* Headers: a Content-Security-Policy without inline scripts or styles, frame denial, no MIME
  sniffing, no referrer (candidate links carry tokens), and ``no-store`` caching of pages.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFProtect

from item_bank.models import StaffUser
from web.db import database

F = TypeVar("F", bound=Callable[..., Any])

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
LOGIN_LIMIT = "10 per minute"
START_LIMIT = "30 per minute"
ANSWER_LIMIT = "120 per minute"


class StaffPrincipal(UserMixin):
    """The logged-in staff member, as Flask-Login sees them."""

    def __init__(self, user: StaffUser) -> None:
        self.user = user
        self.id = user.id
        self.role = user.role
        self.organisation_id = user.organisation_id

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.login_epoch}"


@login_manager.user_loader
def _load_user(user_id: str) -> StaffPrincipal | None:
    try:
        uid, epoch = (int(part) for part in user_id.split(":"))
    except ValueError:
        return None
    with database().sessions() as db:  # a short session: no snapshot held for the request
        user = db.get(StaffUser, uid)
        if user is None or not user.active or user.login_epoch != epoch:
            return None
        db.expunge(user)
    return StaffPrincipal(user)


def _refuse_unless(roles: tuple[str, ...]) -> Any:
    """None when the caller may go on; otherwise the refusal (login redirect, or abort)."""
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            abort(401)
        return login_manager.unauthorized()
    if roles and current_user.role not in roles and current_user.role != "admin":
        abort(403)
    return None


def staff_required(*roles: str) -> Callable[[F], F]:
    """Require a logged-in staff member, with one of ``roles`` when given (admin always passes).

    Anonymous: redirect to the login page (HTML) or 401 (API); wrong role: 403. The same check
    also runs before the request body is parsed (`_authorize_before_parsing`).
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            refusal = _refuse_unless(roles)
            if refusal is not None:
                return refusal
            return view(*args, **kwargs)

        wrapped.required_roles = roles  # type: ignore[attr-defined]  # read by the route audit
        return wrapped  # type: ignore[return-value]

    return decorator


def _authorize_before_parsing() -> Any:
    """Run a staff view's access check before anything else looks at the request.

    flask-smorest validates the body and query (``@blp.arguments``) in a decorator outside the
    view, so an anonymous call with a malformed body got a 422 describing the schema before the
    401; checking here answers 401/403 first, whatever the input.
    """
    if request.endpoint is None:
        return None
    view = current_app.view_functions.get(request.endpoint)
    roles = getattr(view, "required_roles", None)
    if roles is None:
        return None
    return _refuse_unless(tuple(roles))


def candidate_key() -> str:
    """Rate-limit key for a candidate's answers: their session (bearer token) or invitation
    link, so that candidates behind one NAT address do not share a budget."""
    secret = request.headers.get("Authorization", "") or (request.view_args or {}).get("token", "")
    if not secret:
        return get_remote_address()
    return "candidate:" + hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()[:32]


def organisation_id() -> int:
    """The current staff member's organisation (every staff query filters on it)."""
    return int(current_user.organisation_id)


_SECURITY_HEADERS = (("Content-Security-Policy", CONTENT_SECURITY_POLICY),
                     ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                     ("Referrer-Policy", "no-referrer"),
                     ("Cross-Origin-Opener-Policy", "same-origin"))


def _security_headers(response: Response) -> Response:
    """The security headers of every response, each unless the view set its own (one pass
    over the response's headers, not one case-insensitive scan per header)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    extra = list(_SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        extra.append(("Cache-Control", "no-store"))
    if request.is_secure:
        extra.append(("Strict-Transport-Security", "max-age=31536000"))
    for name, value in extra:
        if name.lower() not in present:
            headers.add(name, value)
    return response


def init_app(app: Flask) -> None:
    app.before_request(_authorize_before_parsing)  # first: before CSRF and body validation
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "strong"
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)
    app.after_request(_security_headers)
