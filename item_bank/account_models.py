"""Staff account security tables (typed SQLAlchemy 2.0 models on the item bank's `Base`).

* ``login_throttles``: failed sign-ins per e-mail address (a SHA-256 of the normalised address,
  whether or not an account has it, so that the throttle reveals nothing about which addresses
  exist) with the exponential back-off deadline;
* ``password_reset_tokens``: single-use, expiring reset links, stored as SHA-256 hashes only;
* ``staff_totp``: an enrolled RFC 6238 second factor (its shared secret, encrypted, and the last
  accepted time step, so that a code cannot be replayed); ``staff_recovery_codes``: SHA-256
  hashes of one-time recovery codes (80 random bits each);
* ``staff_identities``: an OpenID Connect identity (issuer, subject) linked to a staff account;
* ``audit_events``: staff actions (who did what to what, when), scoped to an organisation.

Kept out of `item_bank.models` so the tenancy work there and this can change independently;
`item_bank.models` imports this module so that one `Base.metadata` holds every table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from item_bank.models import Base, utcnow


class LoginThrottle(Base):
    """Consecutive failed sign-ins for one e-mail address (known or not)."""

    __tablename__ = "login_throttles"

    #: SHA-256 hex of the lower-cased, stripped e-mail address.
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: No password is checked for this address before this time (None: not throttled).
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class PasswordResetToken(Base):
    """A password reset link: only the SHA-256 of its token is stored."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()


class StaffTotp(Base):
    """A time-based one-time password second factor (RFC 6238) of one staff account.

    ``confirmed_at`` is None while enrolment waits for the first valid code; the factor is
    enforced at sign-in only once confirmed.
    """

    __tablename__ = "staff_totp"

    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         primary_key=True)
    #: The shared secret, encrypted with a key derived from ``SECRET_KEY``
    #: (`web.services.accounts.seal_secret`): it must be read back, so it cannot be hashed.
    secret: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()
    #: The RFC 6238 time step (T) of the last accepted code: a code is accepted once.
    last_step: Mapped[int] = mapped_column(Integer, default=0)


class StaffRecoveryCode(Base):
    """A one-time recovery code for a lost authenticator (SHA-256 hash only)."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[dt.datetime | None] = mapped_column()


class StaffIdentity(Base):
    """An OpenID Connect identity (``iss``, ``sub``) linked to a staff account."""

    __tablename__ = "staff_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"),
                                         index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column()


class AuditEvent(Base):
    """One staff action. ``actor`` keeps the e-mail (or ``command line``) even if the account
    is later removed; ``organisation_id`` scopes who may read it."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_organisation_id_at", "organisation_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id",
                                                            ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(500))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
