"""Accountable results (issue 21): typed SQLAlchemy 2.0 models on the item bank's `Base`.

* ``organisation_privacy``: an organisation's retention period for candidates' personal data
  and whether candidates see an explanation of their result at the end of the test;
* ``result_reviews``: a person's review of a result ("reviewed" or "set aside", with a reason);
  every review is kept, the newest is the result's current state;
* ``candidate_erasures``: that (and when, why) a candidate's personal data was erased; the
  candidate row stays, pseudonymous (its public id), so that responses, calibrations and
  replays keep working.

Kept out of `item_bank.models` (which imports this module, so one `Base.metadata` holds every
table) so that the tenancy work there and this can change independently.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from item_bank.models import Base, utcnow

REVIEW_STATUSES = ("reviewed", "set_aside")
ERASURE_REASONS = ("request", "retention")


class OrganisationPrivacy(Base):
    """Privacy settings of one organisation (no row: keep data, no candidate explanation)."""

    __tablename__ = "organisation_privacy"
    __table_args__ = (CheckConstraint("retention_days IS NULL OR retention_days BETWEEN 1 AND "
                                      "3650", name="retention_days"),)

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"),
                                                 primary_key=True)
    #: Days after a candidate's last activity before their personal data is erased (None: kept
    #: until erased on request).
    retention_days: Mapped[int | None] = mapped_column(Integer)
    #: Show the candidate an explanation of the result at the end of the test.
    explain_to_candidates: Mapped[bool] = mapped_column(Boolean, default=False,
                                                        server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class ResultReview(Base):
    """A person's decision on a session's result (the newest row is the current one)."""

    __tablename__ = "result_reviews"
    __table_args__ = (CheckConstraint("status IN ('reviewed', 'set_aside')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("test_sessions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reviewer: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CandidateErasure(Base):
    """The erasure of one candidate's personal data (at most one per candidate)."""

    __tablename__ = "candidate_erasures"
    __table_args__ = (CheckConstraint("reason IN ('request', 'retention')", name="reason"),)

    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(16))
    erased_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
