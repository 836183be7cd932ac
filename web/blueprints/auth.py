"""Staff sign-in and sign-out, the second factor, password change and reset, single sign-on.

* ``/login``: e-mail and password (`web.services.accounts.sign_in`: the same work for unknown
  addresses, per-address back-off); when the account has TOTP on, ``/login/verify`` asks for a
  code (or a recovery code) before the session starts.
* Every successful sign-in starts a new session: the old session data (with its CSRF token) is
  dropped and a new token is issued (`_start_session`), so a token or cookie planted before
  sign-in is worthless after it.
* ``/password/forgot`` → an e-mail with a single-use link (``/password/reset/<token>``, valid
  `accounts.RESET_TTL`), looked up and sent in the background so that the answer is the same and
  takes as long for any address.
* ``/account``: change the password (current one required), turn the TOTP second factor on/off.
* ``/login/oidc``: OpenID Connect authorisation-code flow with PKCE and a nonce, through Authlib
  (https://docs.authlib.org/en/latest/client/flask.html); the ID token's signature, issuer,
  audience, expiry and nonce are checked by Authlib against the provider's discovery document
  and JWKS. The identity maps to an existing staff account only (`accounts.oidc_account`).
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from item_bank.models import StaffUser
from web import mail
from web.db import get_db, unit_of_work
from web.security import LOGIN_LIMIT, StaffPrincipal, limiter
from web.services import accounts

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

PENDING = "pending_second_factor"
#: Seconds between a right password and the second factor before sign-in starts over.
PENDING_TTL_S = 300
MAX_CODE_ATTEMPTS = 5
OIDC_EXTENSION = "proficio.oidc"


@bp.record_once
def _warm_dummy_hash(_state: Any) -> None:
    accounts._dummy_hash()  # made now, so the first unknown e-mail costs no extra hash


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after sign-in (no open redirects)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return None
    return target


def _home_for(role: str) -> str:
    return url_for("psychometrician.bank") if role == "psychometrician" \
        else url_for("recruiter.candidates")


def _principal(acct: accounts.Account) -> StaffPrincipal:
    return StaffPrincipal(StaffUser(id=acct.id, email=acct.email, role=acct.role,
                                    organisation_id=acct.organisation_id,
                                    login_epoch=acct.login_epoch, active=True))


def _start_session(acct: accounts.Account) -> None:
    """Sign ``acct`` in on a fresh session: nothing from before sign-in survives (the CSRF
    token included: Flask-WTF makes a new one on the next form)."""
    session.clear()
    g.pop("csrf_token", None)
    login_user(_principal(acct))


def _oidc_enabled() -> bool:
    return bool(current_app.config.get("OIDC_ISSUER") and current_app.config.get("OIDC_CLIENT_ID"))


def _login_page(status: int = 200, **kw: Any):
    kw.setdefault("email", "")
    kw.setdefault("error", None)
    return render_template("auth/login.html", oidc=_oidc_enabled(),
                           oidc_name=current_app.config.get("OIDC_PROVIDER_NAME"), **kw), status


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
def login():
    next_url = _safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or _home_for(current_user.role))
    if request.method == "GET":
        return _login_page(next=next_url)
    email = request.form.get("email", "")[:320]
    result = accounts.sign_in(email, request.form.get("password", ""))
    if result.status == "throttled":
        return _login_page(429, next=next_url, email=email,
                           error=f"Too many failed sign-ins for this address. Try again in "
                                 f"{_minutes(result.retry_after)}, or reset your password.")
    if result.status == "invalid" or result.account is None:
        return _login_page(401, next=next_url, email=email,
                           error="Unknown e-mail or wrong password.")
    if result.status == "second_factor":
        return _ask_second_factor(result.account, next_url, "password")
    _start_session(result.account)
    return redirect(next_url or _home_for(result.account.role))


def _ask_second_factor(acct: accounts.Account, next_url: str | None, method: str):
    session.clear()
    session[PENDING] = {"uid": acct.id, "epoch": acct.login_epoch, "next": next_url,
                        "method": method, "until": time.time() + PENDING_TTL_S, "tries": 0}
    return redirect(url_for("auth.verify"))


@bp.route("/login/verify", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
def verify():
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        session.pop(PENDING, None)
        flash("Please sign in again.", "error")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/verify.html", error=None)
    code = request.form.get("code", "")[:64]
    with unit_of_work() as db:
        acct = accounts.second_factor(db, int(pending["uid"]), code, method=pending["method"],
                                      epoch=int(pending["epoch"]))
    if acct is None:
        pending["tries"] = int(pending.get("tries", 0)) + 1
        if pending["tries"] >= MAX_CODE_ATTEMPTS:
            session.pop(PENDING, None)
            flash("Too many wrong codes; please sign in again.", "error")
            return redirect(url_for("auth.login"))
        session[PENDING] = pending
        return render_template("auth/verify.html", error="That code is not right."), 401
    _start_session(acct)
    return redirect(_safe_next(pending.get("next")) or _home_for(acct.role))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    with unit_of_work() as db:
        accounts.end_sessions(db, int(current_user.id))
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/")
def index():
    if current_user.is_authenticated:
        return redirect(_home_for(current_user.role))
    return redirect(url_for("auth.login"))


# -- the account page: password, second factor ---------------------------------------------


def _account_page(status: int = 200, **kw: Any):
    db = get_db()
    acct = accounts.get_account(db, int(current_user.id))
    pending = accounts.pending_totp(db, int(current_user.id))
    if acct is None:
        abort(404)
    qr = None
    if pending is not None:  # the otpauth:// URI as a QR code (SVG data URI: CSP img-src data:)
        out = io.BytesIO()
        segno.make(pending.uri, error="m").save(out, kind="svg", scale=5, border=2)
        qr = "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    kw.setdefault("error", None)
    kw.setdefault("recovery_codes", None)
    return render_template("auth/account.html", account=acct, pending=pending, qr=qr,
                           **kw), status


@bp.route("/account")
@login_required
def account():
    return _account_page()


@bp.route("/account/password", methods=["POST"])
@login_required
@limiter.limit(LOGIN_LIMIT)
def change_password():
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        return _account_page(400, error="The two new passwords differ.")
    try:
        with unit_of_work() as db:
            acct = accounts.change_password(db, int(current_user.id),
                                            request.form.get("current_password", ""), new)
    except accounts.AccountError as exc:
        return _account_page(400, error=f"Password not changed: {exc}.")
    _start_session(acct)  # every other session was signed out; this one continues
    flash("Password changed. Other sessions were signed out.", "ok")
    return redirect(url_for("auth.account"))


@bp.route("/account/totp", methods=["POST"])
@login_required
def totp_start():
    try:
        with unit_of_work() as db:
            accounts.start_totp(db, int(current_user.id))
    except accounts.AccountError as exc:
        return _account_page(400, error=str(exc))
    return redirect(url_for("auth.account"))


@bp.route("/account/totp/confirm", methods=["POST"])
@login_required
@limiter.limit(LOGIN_LIMIT)
def totp_confirm():
    try:
        with unit_of_work() as db:
            codes = accounts.confirm_totp(db, int(current_user.id),
                                          request.form.get("code", "")[:64])
    except accounts.AccountError as exc:
        return _account_page(400, error=f"Two-step sign-in not turned on: {exc}.")
    return _account_page(recovery_codes=codes)


@bp.route("/account/totp/disable", methods=["POST"])
@login_required
@limiter.limit(LOGIN_LIMIT)
def totp_disable():
    try:
        with unit_of_work() as db:
            accounts.disable_totp(db, int(current_user.id), request.form.get("password", ""))
    except accounts.AccountError as exc:
        return _account_page(400, error=f"Two-step sign-in is still on: {exc}.")
    flash("Two-step sign-in is off.", "ok")
    return redirect(url_for("auth.account"))


# -- password reset by e-mail --------------------------------------------------------------


RESET_THREAD = "password-reset"
#: Reset requests handled at once per process; more (a flood from many addresses) are dropped
#: with a warning rather than piling up threads.
_reset_slots = threading.BoundedSemaphore(8)


def _reset_in_background(email: str) -> None:
    """Look the address up, make the link and send it after the response: the answer takes the
    same time whether or not the address has an account (no database work in the request)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not _reset_slots.acquire(blocking=False):
        log.warning("password reset request dropped: too many in progress")
        return

    def run() -> None:
        with app.app_context():
            try:
                with unit_of_work() as db:
                    reset = accounts.request_reset(db, email, app.config["PROFICIO_BASE_URL"])
                if reset is None:
                    return
                minutes = int(accounts.RESET_TTL.total_seconds() // 60)
                mail.send_mail(
                    reset.to, "Reset your Proficio password",
                    f"Someone (hopefully you) asked to reset the password of the Proficio staff "
                    f"account {reset.to}.\n\nTo choose a new password, open this link within "
                    f"{minutes} minutes (it works once):\n\n{reset.link}\n\nIf you did not ask "
                    f"for this, ignore this e-mail; your password stays as it is.\n")
            except (mail.MailError, mail.MailNotConfigured) as exc:
                log.error("password reset e-mail not sent: %s", exc)
            except Exception:
                log.exception("password reset failed")
            finally:
                _reset_slots.release()

    threading.Thread(target=run, name=RESET_THREAD, daemon=True).start()


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
def forgot_password():
    configured = bool(current_app.config.get("MAIL_SERVER"))
    if request.method == "GET" or not configured:
        return render_template("auth/forgot.html", configured=configured, sent=False)
    _reset_in_background(request.form.get("email", "")[:320])
    return render_template("auth/forgot.html", configured=True, sent=True)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
def reset_password(token: str):
    valid = accounts.reset_token_valid(get_db(), token)
    if not valid:
        return render_template("auth/reset.html", valid=False, error=None), 404
    if request.method == "GET":
        return render_template("auth/reset.html", valid=True, error=None)
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm_password", ""):
        return render_template("auth/reset.html", valid=True,
                               error="The two passwords differ."), 400
    try:
        with unit_of_work() as db:
            acct = accounts.reset_password(db, token, new)
    except accounts.AccountError as exc:
        return render_template("auth/reset.html", valid=True, error=f"{exc}."), 400
    logout_user()
    if acct.totp_enabled:
        return _ask_second_factor(acct, None, "password reset")
    _start_session(acct)
    flash("Your password was changed and you are signed in.", "ok")
    return redirect(_home_for(acct.role))


# -- OpenID Connect ------------------------------------------------------------------------


def _oidc_client():
    from authlib.integrations.flask_client import OAuth

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = app.extensions.get(OIDC_EXTENSION)
    if client is None:
        oauth = OAuth(app)
        issuer = app.config["OIDC_ISSUER"].rstrip("/")
        client = oauth.register(
            "oidc", client_id=app.config["OIDC_CLIENT_ID"],
            client_secret=app.config.get("OIDC_CLIENT_SECRET") or None,
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256",
                           "default_timeout": 10})
        app.extensions[OIDC_EXTENSION] = client
    return client


@bp.route("/login/oidc")
@limiter.limit(LOGIN_LIMIT)
def oidc_login():
    if not _oidc_enabled():
        abort(404)
    next_url = _safe_next(request.args.get("next"))
    session.pop("oidc_next", None)
    if next_url:
        session["oidc_next"] = next_url
    try:
        return _oidc_client().authorize_redirect(url_for("auth.oidc_callback", _external=True))
    except Exception as exc:  # the provider's discovery document could not be read
        log.error("OpenID Connect provider unavailable: %s: %s", type(exc).__name__, exc)
        return _login_page(503, error="Single sign-on is unavailable right now; sign in with "
                                      "your password or try again later.")


@bp.route("/login/oidc/callback")
@limiter.limit(LOGIN_LIMIT)
def oidc_callback():
    from authlib.common.errors import AuthlibBaseError  # OAuth errors and claim checks
    from joserfc.errors import JoseError  # signature and JWT format errors

    if not _oidc_enabled():
        abort(404)
    client = _oidc_client()
    try:
        token = client.authorize_access_token()
        claims = token.get("userinfo") or {}
        issuer = str(client.load_server_metadata()["issuer"])
    except (AuthlibBaseError, JoseError, ValueError, KeyError) as exc:
        log.warning("OpenID Connect sign-in refused: %s: %s", type(exc).__name__, exc)
        return _login_page(401, error="Single sign-on failed; please try again.")
    except Exception as exc:  # network errors talking to the provider, malformed answers
        log.error("OpenID Connect token exchange failed: %s: %s", type(exc).__name__, exc)
        return _login_page(503, error="Single sign-on is unavailable right now.")
    subject = str(claims.get("sub") or "")
    if not subject:
        return _login_page(401, error="Single sign-on failed; please try again.")
    with unit_of_work() as db:
        acct = accounts.oidc_account(db, issuer, subject, claims.get("email"),
                                     claims.get("email_verified") is True)
    next_url = _safe_next(session.pop("oidc_next", None))
    if acct is None:
        return _login_page(403, error="Your single sign-on identity has no Proficio staff "
                                      "account. Ask your administrator to create one for "
                                      "your e-mail address.")
    if acct.totp_enabled:
        return _ask_second_factor(acct, next_url, "oidc")
    _start_session(acct)
    return redirect(next_url or _home_for(acct.role))
