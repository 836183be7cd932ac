"""Staff account security: sign-in with per-address back-off, password change and reset,
the TOTP second factor with recovery codes, and OpenID Connect identities.

Sign-in (`sign_in`) costs the same whether or not the e-mail has an account: an unknown address
is checked against a dummy argon2 hash made with the same parameters, and both outcomes write
the same throttle row. The throttle is keyed by the address (a SHA-256 of it), known or not, so
its answers reveal nothing either. After `FREE_ATTEMPTS` consecutive failures every further one
doubles the wait (`backoff`), capped at `MAX_BACKOFF`: an attacker can slow an account down but
never lock it for good, and a successful sign-in or password reset clears the count. The
per-address limit (`web.security.LOGIN_LIMIT`) bounds guessing across accounts.

Reset links carry a 256-bit token; only its SHA-256 is stored, it expires after `RESET_TTL`
and works once. TOTP follows RFC 6238 (30-second steps, SHA-1, 6 digits, ±1 step of clock
drift) through pyotp; an accepted code's step is remembered so that it cannot be replayed.
Recovery codes have 80 random bits each and are stored as SHA-256 hashes (like tokens: no
dictionary to attack).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from item_bank.account_models import (
    LoginThrottle,
    PasswordResetToken,
    StaffIdentity,
    StaffRecoveryCode,
    StaffTotp,
)
from item_bank.db import rowcount
from item_bank.models import ROLES, Organisation, StaffUser, as_utc, utcnow
from item_bank.security import hash_password, hash_token, new_token, verify_password
from web.db import database, unit_of_work
from web.services import audit

#: Failed sign-ins allowed for an address before the back-off starts.
FREE_ATTEMPTS = 5
#: First wait after `FREE_ATTEMPTS` failures; doubles with each further failure.
BASE_BACKOFF = dt.timedelta(seconds=30)
MAX_BACKOFF = dt.timedelta(minutes=15)
#: A failure count older than this is forgotten.
THROTTLE_MEMORY = dt.timedelta(hours=24)
RESET_TTL = dt.timedelta(minutes=30)
#: Reset e-mails per account per hour (a victim's inbox cannot be flooded).
MAX_RESETS_PER_HOUR = 3
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
TOTP_ISSUER = "Proficio"
TOTP_DRIFT_STEPS = 1
RECOVERY_CODES = 10


class AccountError(ValueError):
    """A request about an account that cannot be honoured (the message is for the user)."""


@dataclass(frozen=True)
class Account:
    """What the web tier needs of a staff member (no password hash)."""

    id: int
    email: str
    name: str
    role: str
    organisation_id: int
    login_epoch: int
    totp_enabled: bool


@dataclass(frozen=True)
class SignIn:
    """Outcome of a password check: ``ok`` (signed in), ``second_factor`` (password right, TOTP
    code needed), ``invalid`` or ``throttled`` (``retry_after`` seconds)."""

    status: str
    account: Account | None = None
    retry_after: int = 0


@dataclass(frozen=True)
class ResetMail:
    to: str
    link: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str


# -- helpers --------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_key(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode("utf-8", "replace")).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """An argon2 hash of a random password, same parameters as real ones (never matches)."""
    return hash_password(secrets.token_urlsafe(24))


def backoff(failures: int) -> dt.timedelta:
    """Wait after ``failures`` consecutive failures: 0 up to `FREE_ATTEMPTS` − 1, then
    ``BASE_BACKOFF · 2^(failures − FREE_ATTEMPTS)`` capped at `MAX_BACKOFF`."""
    if failures < FREE_ATTEMPTS:
        return dt.timedelta(0)
    exponent = min(failures - FREE_ATTEMPTS, 16)
    return min(BASE_BACKOFF * (2 ** exponent), MAX_BACKOFF)


def check_new_password(password: str, email: str = "") -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the new password must have at least {MIN_PASSWORD_LENGTH} "
                           "characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"the new password must have at most {MAX_PASSWORD_LENGTH} "
                           "characters")
    if email and password.strip().lower() == normalise_email(email):
        raise AccountError("the new password must not be the e-mail address")


def _totp_confirmed(db: Session, user_id: int) -> bool:
    row = db.get(StaffTotp, user_id)
    return row is not None and row.confirmed_at is not None


def account(db: Session, user: StaffUser) -> Account:
    return Account(user.id, user.email, user.name, user.role, user.organisation_id,
                   user.login_epoch, _totp_confirmed(db, user.id))


def _existing_user(db: Session, user_id: int) -> StaffUser:
    """The staff account ``user_id`` that the caller has just seen (accounts are deactivated,
    never deleted, so a missing row means the database was changed behind the app's back)."""
    user = db.get(StaffUser, user_id)
    if user is None:
        raise LookupError(f"staff account {user_id} no longer exists")
    return user


def get_account(db: Session, user_id: int) -> Account | None:
    user = db.get(StaffUser, user_id)
    return account(db, user) if user is not None and user.active else None


def _user_by_email(db: Session, email: str) -> StaffUser | None:
    return db.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))


def _throttled_for(db: Session, email: str, now: dt.datetime) -> int:
    row = db.get(LoginThrottle, email_key(email))
    if row is None or row.locked_until is None:
        return 0
    left = (as_utc(row.locked_until) - now).total_seconds()
    return max(0, int(left + 0.999))


def _register_failure(db: Session, email: str, now: dt.datetime) -> None:
    """Count a failure; concurrent failures for one address serialise on its row (the first
    insert wins, the others lock and increment it) instead of failing on the primary key."""
    key = email_key(email)
    row = db.get(LoginThrottle, key, with_for_update=True)
    if row is None:
        try:
            with db.begin_nested():
                db.add(LoginThrottle(email_hash=key, failures=0, last_failure_at=now))
        except IntegrityError:
            pass  # another request inserted it first
        row = db.get(LoginThrottle, key, with_for_update=True, populate_existing=True)
        assert row is not None
    elif now - as_utc(row.last_failure_at) > THROTTLE_MEMORY:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    wait = backoff(row.failures)
    row.locked_until = now + wait if wait else None
    # forget addresses nobody has tried for a day (bounds the table)
    db.execute(delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - THROTTLE_MEMORY))


def clear_throttle(db: Session, email: str) -> None:
    db.execute(delete(LoginThrottle).where(LoginThrottle.email_hash == email_key(email)))


# -- sign-in --------------------------------------------------------------------------------


def sign_in(email: str, password: str) -> SignIn:
    """Check ``email``/``password`` (the same work whether or not the address has an account).

    The argon2 check runs between a short read and a short write transaction, never while
    holding a write lock."""
    now = utcnow()
    email = normalise_email(email)[:320]
    with database().sessions() as reader:
        wait = _throttled_for(reader, email, now)
        if wait:
            return SignIn("throttled", retry_after=wait)
        user = _user_by_email(reader, email)
        usable = user is not None and user.active
        stored = user.password_hash if user is not None and usable else _dummy_hash()
    ok = verify_password(stored, password[:MAX_PASSWORD_LENGTH]) and usable
    with unit_of_work() as db:
        if not ok or user is None:  # (`ok` implies a user; the `is None` test narrows its type)
            _register_failure(db, email, now)
            return SignIn("invalid")
        clear_throttle(db, email)
        fresh = _existing_user(db, user.id)
        acct = account(db, fresh)
        if not acct.totp_enabled:
            audit.record(db, actor=fresh, action="login", target=fresh.email,
                         detail={"method": "password"})
            return SignIn("ok", acct)
        return SignIn("second_factor", acct)


def second_factor(db: Session, user_id: int, code: str, *, method: str,
                  epoch: int | None = None) -> Account | None:
    """Check a TOTP code (or, when it has the recovery-code form, a recovery code) for a user
    whose first factor passed at login epoch ``epoch`` (a password change or sign-out since
    then voids it). A failure counts against the address's throttle."""
    user = db.get(StaffUser, user_id)
    if user is None or not user.active or (epoch is not None and user.login_epoch != epoch):
        return None
    now = utcnow()
    if _throttled_for(db, user.email, now):
        return None
    code = "".join(code.split()).replace("-", "").upper()
    accepted = False
    used_recovery = False
    if code.isdigit():
        accepted = verify_totp(db, user_id, code)
    elif code:
        digest = hashlib.sha256(code.encode()).hexdigest()
        row = db.scalar(select(StaffRecoveryCode).where(
            StaffRecoveryCode.user_id == user_id, StaffRecoveryCode.code_hash == digest,
            StaffRecoveryCode.used_at.is_(None)))
        # a conditional update: two concurrent uses of one code cannot both succeed
        if row is not None and rowcount(db.execute(
                update(StaffRecoveryCode).where(StaffRecoveryCode.id == row.id,
                                                StaffRecoveryCode.used_at.is_(None))
                .values(used_at=now))) == 1:
            accepted = used_recovery = True
    if not accepted:
        _register_failure(db, user.email, now)
        return None
    clear_throttle(db, user.email)
    if used_recovery:
        left = len(list(db.scalars(select(StaffRecoveryCode.id).where(
            StaffRecoveryCode.user_id == user_id, StaffRecoveryCode.used_at.is_(None)))))
        audit.record(db, actor=user, action="recovery_code.used", target=user.email,
                     detail={"remaining": left})
    audit.record(db, actor=user, action="login", target=user.email,
                 detail={"method": method, "second_factor": "recovery code" if used_recovery
                         else "totp"})
    return account(db, user)


def end_sessions(db: Session, user_id: int) -> None:
    """Invalidate every login cookie of the user (their epoch no longer matches)."""
    db.execute(update(StaffUser).where(StaffUser.id == user_id)
               .values(login_epoch=StaffUser.login_epoch + 1))


# -- passwords ------------------------------------------------------------------------------


def change_password(db: Session, user_id: int, current: str, new: str) -> Account:
    """Change the password after checking the current one; signs out every other session
    (the caller signs this one in again with the returned epoch)."""
    user = db.get(StaffUser, user_id)
    if user is None or not user.active:
        raise AccountError("no such account")
    if not verify_password(user.password_hash, current[:MAX_PASSWORD_LENGTH]):
        raise AccountError("the current password is wrong")
    check_new_password(new, user.email)
    if verify_password(user.password_hash, new):
        raise AccountError("the new password must differ from the current one")
    _set_password(db, user, new)
    audit.record(db, actor=user, action="password.changed", target=user.email, detail={})
    db.flush()
    db.refresh(user)
    return account(db, user)


def _set_password(db: Session, user: StaffUser, new: str) -> None:
    user.password_hash = hash_password(new)
    user.login_epoch = user.login_epoch + 1
    db.execute(update(PasswordResetToken)
               .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
               .values(used_at=utcnow()))
    clear_throttle(db, user.email)


def request_reset(db: Session, email: str, base_url: str) -> ResetMail | None:
    """A reset link for an active account with this e-mail (None otherwise, or when
    `MAX_RESETS_PER_HOUR` links were sent in the last hour). The caller shows the same answer
    in every case."""
    now = utcnow()
    # the account row is locked so that concurrent requests count each other's links
    user = db.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email[:320]))
                     .with_for_update())
    if user is None or not user.active:
        return None
    recent = list(db.scalars(select(PasswordResetToken.id).where(
        PasswordResetToken.user_id == user.id,
        PasswordResetToken.created_at > now - dt.timedelta(hours=1))))
    if len(recent) >= MAX_RESETS_PER_HOUR:
        return None
    token = new_token()
    row = PasswordResetToken(user_id=user.id, token_hash=hash_token(token), created_at=now,
                             expires_at=now + RESET_TTL)
    db.add(row)
    audit.record(db, actor=user, action="password.reset_requested", target=user.email,
                 detail={})
    return ResetMail(user.email, f"{base_url}/password/reset/{token}", row.expires_at)


def _live_token(db: Session, token: str) -> PasswordResetToken | None:
    if not token or len(token) > 128:
        return None
    row = db.scalar(select(PasswordResetToken)
                    .where(PasswordResetToken.token_hash == hash_token(token)))
    if row is None or row.used_at is not None or as_utc(row.expires_at) <= utcnow():
        return None
    return row


def reset_token_valid(db: Session, token: str) -> bool:
    return _live_token(db, token) is not None


def reset_password(db: Session, token: str, new: str) -> Account:
    """Set a new password with a reset link: the link is used up, every session and every other
    link of the account ends, and the sign-in back-off of the address is cleared."""
    row = _live_token(db, token)
    if row is None:
        raise AccountError("this reset link is invalid, used or expired; ask for a new one")
    user = db.get(StaffUser, row.user_id)
    if user is None or not user.active:
        raise AccountError("this reset link is invalid, used or expired; ask for a new one")
    check_new_password(new, user.email)
    if rowcount(db.execute(update(PasswordResetToken).where(PasswordResetToken.id == row.id,
                                                            PasswordResetToken.used_at.is_(None))
                           .values(used_at=utcnow()))) != 1:  # used by a concurrent request
        raise AccountError("this reset link is invalid, used or expired; ask for a new one")
    _set_password(db, user, new)
    audit.record(db, actor=user, action="password.reset", target=user.email, detail={})
    db.flush()
    db.refresh(user)
    return account(db, user)


def set_password(db: Session, email: str, new: str) -> StaffUser:
    """An administrator's reset from the command line (no e-mail needed)."""
    user = _user_by_email(db, email)
    if user is None:
        raise AccountError(f"no staff account {normalise_email(email)!r}")
    check_new_password(new, user.email)
    _set_password(db, user, new)
    audit.record(db, actor=None, action="staff.password_set", target=user.email, detail={},
                 organisation_id=user.organisation_id)
    return user


def set_role(db: Session, org_slug: str, email: str, role: str,
             actor: StaffUser | None = None) -> StaffUser:
    """Change the role of the staff member ``email`` of organisation ``org_slug``."""
    org = db.scalar(select(Organisation).where(Organisation.slug == org_slug))
    user = _user_by_email(db, email)
    if org is None or user is None or user.organisation_id != org.id:
        raise AccountError(f"no staff account {normalise_email(email)!r} in {org_slug!r}")
    return _change_role(db, user, role, actor)


def set_role_by_id(db: Session, org_id: int, user_id: int, role: str,
                   actor: StaffUser | None) -> StaffUser:
    """An organisation admin changes a colleague's role (another organisation's account is
    reported as not found)."""
    user = db.get(StaffUser, user_id)
    if user is None or user.organisation_id != org_id:
        raise LookupError("no such staff account")
    return _change_role(db, user, role, actor)


def staff_list(db: Session, org_id: int) -> list[Account]:
    users = db.scalars(select(StaffUser).where(StaffUser.organisation_id == org_id)
                       .order_by(StaffUser.email))
    return [account(db, u) for u in users]


def _change_role(db: Session, user: StaffUser, role: str, actor: StaffUser | None) -> StaffUser:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; expected one of {ROLES}")
    if user.role == "admin" and role != "admin":
        admins = db.scalars(select(StaffUser.id).where(
            StaffUser.organisation_id == user.organisation_id, StaffUser.role == "admin",
            StaffUser.active.is_(True))).all()
        if len(admins) <= 1:
            raise AccountError("the organisation's last admin cannot lose the admin role")
    before = user.role
    user.role = role
    user.login_epoch += 1  # open sessions carry the old role: sign them out
    audit.record(db, actor=actor, action="staff.role_changed", target=user.email,
                 detail={"from": before, "to": role}, organisation_id=user.organisation_id)
    return user


# -- TOTP -----------------------------------------------------------------------------------


def _sealing_key() -> Fernet:
    """A Fernet key (AES-128-CBC + HMAC-SHA256) derived from the app's ``SECRET_KEY`` with
    HKDF-SHA256 (RFC 5869), used only for TOTP secrets: unlike passwords and tokens they must be
    read back, so they are encrypted rather than hashed; a database dump alone does not reveal
    them."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"proficio staff totp secret v1")
    raw = hkdf.derive(current_app.config["SECRET_KEY"].encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(raw))


def seal_secret(secret: str) -> str:
    return "f1:" + _sealing_key().encrypt(secret.encode("ascii")).decode("ascii")


def open_secret(stored: str) -> str:
    if not stored.startswith("f1:"):
        raise InvalidToken("not a sealed secret")
    return _sealing_key().decrypt(stored[3:].encode("ascii")).decode("ascii")


def start_totp(db: Session, user_id: int) -> TotpEnrolment:
    """A new (unconfirmed) secret for the user; replaces an earlier unconfirmed one."""
    user = db.get(StaffUser, user_id)
    if user is None:
        raise AccountError("no such account")
    row = db.get(StaffTotp, user_id)
    if row is not None and row.confirmed_at is not None:
        raise AccountError("two-step sign-in is already on; turn it off first")
    secret = pyotp.random_base32(32)  # 160 bits, the RFC 4226 recommended key length
    if row is None:
        db.add(StaffTotp(user_id=user_id, secret=seal_secret(secret), last_step=0))
    else:
        row.secret, row.last_step, row.created_at = seal_secret(secret), 0, utcnow()
    return TotpEnrolment(secret, pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=TOTP_ISSUER))


def pending_totp(db: Session, user_id: int) -> TotpEnrolment | None:
    row = db.get(StaffTotp, user_id)
    user = db.get(StaffUser, user_id)
    if row is None or row.confirmed_at is not None or user is None:
        return None
    secret = open_secret(row.secret)
    return TotpEnrolment(secret, pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=TOTP_ISSUER))


def verify_totp(db: Session, user_id: int, code: str, at: float | None = None) -> bool:
    """True when ``code`` is the TOTP of a step within ±`TOTP_DRIFT_STEPS` of now that is newer
    than the last accepted one (RFC 6238 §5.2: a verifier must not accept a code twice)."""
    row = db.get(StaffTotp, user_id)
    if row is None or not code.isdigit() or len(code) != 6:
        return False
    try:
        totp = pyotp.TOTP(open_secret(row.secret))
    except InvalidToken:  # sealed under another SECRET_KEY: only recovery codes work now
        return False
    now = time.time() if at is None else at
    step_now = int(now // totp.interval)
    for step in range(step_now - TOTP_DRIFT_STEPS, step_now + TOTP_DRIFT_STEPS + 1):
        if step > row.last_step and secrets.compare_digest(totp.at(step * totp.interval), code):
            # conditional: of two concurrent requests with the same code only one advances it
            won = rowcount(db.execute(update(StaffTotp).where(StaffTotp.user_id == user_id,
                                                              StaffTotp.last_step < step)
                                      .values(last_step=step))) == 1
            db.refresh(row)
            return won
    return False


def confirm_totp(db: Session, user_id: int, code: str) -> list[str]:
    """Turn the second factor on with a first valid code; returns new recovery codes (shown
    once; only their hashes are kept)."""
    row = db.get(StaffTotp, user_id)
    if row is None or row.confirmed_at is not None:
        raise AccountError("start the set-up again")
    if not verify_totp(db, user_id, "".join(code.split())):
        raise AccountError("that code is not right; check the time on your device and try "
                           "again")
    row.confirmed_at = utcnow()
    codes = new_recovery_codes(db, user_id)
    user = _existing_user(db, user_id)
    audit.record(db, actor=user, action="totp.enabled", target=user.email, detail={})
    return codes


def new_recovery_codes(db: Session, user_id: int) -> list[str]:
    db.execute(delete(StaffRecoveryCode).where(StaffRecoveryCode.user_id == user_id))
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols: 5 bits each, no 0/O, 1/I
    codes = ["".join(secrets.choice(alphabet) for _ in range(16)) for _ in range(RECOVERY_CODES)]
    for c in codes:
        db.add(StaffRecoveryCode(user_id=user_id, code_hash=hashlib.sha256(c.encode()).hexdigest()))
    return [f"{c[:4]}-{c[4:8]}-{c[8:12]}-{c[12:]}" for c in codes]


def disable_totp(db: Session, user_id: int, password: str) -> None:
    user = db.get(StaffUser, user_id)
    if user is None or not verify_password(user.password_hash, password[:MAX_PASSWORD_LENGTH]):
        raise AccountError("the password is wrong")
    db.execute(delete(StaffTotp).where(StaffTotp.user_id == user_id))
    db.execute(delete(StaffRecoveryCode).where(StaffRecoveryCode.user_id == user_id))
    audit.record(db, actor=user, action="totp.disabled", target=user.email, detail={})


def reset_second_factor(db: Session, email: str) -> StaffUser:
    """An administrator turns off a staff member's two-step sign-in (lost device and recovery
    codes) from the command line; their sessions end."""
    user = _user_by_email(db, email)
    if user is None:
        raise AccountError(f"no staff account {normalise_email(email)!r}")
    db.execute(delete(StaffTotp).where(StaffTotp.user_id == user.id))
    db.execute(delete(StaffRecoveryCode).where(StaffRecoveryCode.user_id == user.id))
    user.login_epoch += 1
    audit.record(db, actor=None, action="totp.disabled", target=user.email,
                 detail={"by": "administrator"}, organisation_id=user.organisation_id)
    return user


# -- OpenID Connect -------------------------------------------------------------------------


def oidc_account(db: Session, issuer: str, subject: str, email: str | None,
                 email_verified: bool) -> Account | None:
    """The staff account for a provider identity: the one linked to (issuer, subject), else the
    existing account with the provider's *verified* e-mail (then linked). Never creates an
    account or grants access to an organisation; None when there is no such account."""
    link = db.scalar(select(StaffIdentity).where(StaffIdentity.issuer == issuer,
                                                 StaffIdentity.subject == subject))
    if link is not None:
        user = db.get(StaffUser, link.user_id)
    else:
        if not email or not email_verified:
            return None
        user = _user_by_email(db, email)
        if user is None:
            return None
        link = StaffIdentity(user_id=user.id, issuer=issuer, subject=subject)
        db.add(link)
    if user is None or not user.active:
        return None
    link.last_login_at = utcnow()
    clear_throttle(db, user.email)
    acct = account(db, user)
    if not acct.totp_enabled:
        audit.record(db, actor=user, action="login", target=user.email,
                     detail={"method": "oidc", "issuer": issuer})
    return acct
