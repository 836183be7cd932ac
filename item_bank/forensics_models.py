"""Test-security operations (issue 17): typed SQLAlchemy 2.0 models on the item bank's `Base`.

* ``bank_monitors``: per bank, the compromised-item monitor's bookkeeping — whether a monitor
  job is pending (so completed sessions queue at most one per bank), when it last ran — and the
  bank's lognormal response-time fit (`irt.response_time.fit_lognormal`) that the monitor and
  the candidates' integrity notes use;
* ``item_alarms``: an item the monitor flagged (`calibration.forensics.monitor_item`): when the
  change began, the evidence, and what the psychometrician decided (``open`` → ``dismissed`` /
  ``held`` / ``retired``);
* ``assessments.security`` (a column of `item_bank.models.Assessment`): effort-moderated
  scoring and the retake window (`check_security`);
* ``session_integrity``: a completed session's integrity evidence (rapid guesses, pre-knowledge
  statistic, lz*) and the neutral notes the recruiter's report shows, computed once.

Kept out of `item_bank.models` (which imports this module, so one `Base.metadata` holds every
table).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from item_bank.models import Base, utcnow

ALARM_STATUSES = ("open", "dismissed", "held", "retired")
#: An assessment's test-security settings (``assessments.security``; None: these defaults).
DEFAULT_RETAKE_WINDOW_DAYS = 180
SECURITY_DEFAULTS: dict[str, Any] = {"effort_moderated": False,
                                     "retake_window_days": DEFAULT_RETAKE_WINDOW_DAYS}


def check_security(value: Any) -> dict[str, Any]:
    """Validated test-security settings of an assessment (missing keys take the defaults):

    * ``effort_moderated`` (bool): rapid guesses are left out of the score (and the report
      says how many);
    * ``retake_window_days`` (0–3650): a candidate invited again with the same e-mail within
      the organisation inside this many days gets no item seen before where the bank allows
      it; 0 switches that off.
    """
    if value is None:
        return dict(SECURITY_DEFAULTS)
    if not isinstance(value, dict):
        raise ValueError("field 'security' must be an object")
    unknown = set(value) - set(SECURITY_DEFAULTS)
    if unknown:
        raise ValueError(f"field 'security': unknown setting(s) {sorted(unknown)}; known: "
                         f"{sorted(SECURITY_DEFAULTS)}")
    out = dict(SECURITY_DEFAULTS) | value
    if not isinstance(out["effort_moderated"], bool):
        raise ValueError("field 'security.effort_moderated' must be true or false")
    days = out["retake_window_days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
        raise ValueError(f"field 'security.retake_window_days' must be a whole number of days "
                         f"from 0 to 3650, got {days!r}")
    return out


def session_security(session_copy: dict[str, Any] | None,
                     assessment_security: dict[str, Any] | None) -> dict[str, Any]:
    """The settings a session runs under: its own copy, taken when it started
    (``test_sessions.security``), else — a session started before copies were kept — its
    assessment's."""
    return check_security(session_copy if session_copy is not None else assessment_security)


class BankMonitor(Base):
    """The compromised-item monitor of one bank and the bank's response-time model."""

    __tablename__ = "bank_monitors"

    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), primary_key=True)
    #: A monitor job is queued and has not started yet (at most one per bank).
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    requested_at: Mapped[dt.datetime | None] = mapped_column()
    ran_at: Mapped[dt.datetime | None] = mapped_column()
    n_responses: Mapped[int | None] = mapped_column(Integer)
    n_items: Mapped[int | None] = mapped_column(Integer)
    #: ``{"sigma_tau", "n_responses", "items": {external_id: [beta, alpha, n]}}``
    rt_fit: Mapped[dict[str, Any] | None] = mapped_column()
    rt_fitted_at: Mapped[dt.datetime | None] = mapped_column()


class ItemAlarm(Base):
    """An item flagged by the monitor, with its evidence and the decision taken on it."""

    __tablename__ = "item_alarms"
    __table_args__ = (CheckConstraint("status IN ('open', 'dismissed', 'held', 'retired')",
                                      name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: When the change began: the first answer after the CUSUM last left 0.
    started_at: Mapped[dt.datetime | None] = mapped_column()
    #: The answer at which the CUSUM reached its threshold.
    flagged_at: Mapped[dt.datetime | None] = mapped_column()
    statistic: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    n_responses: Mapped[int] = mapped_column(Integer)
    n_since_start: Mapped[int] = mapped_column(Integer)
    correct_since_start: Mapped[int] = mapped_column(Integer)
    expected_correct_since_start: Mapped[float] = mapped_column(Float)
    #: Shares of answers that were correct and fast (time residual < −1 SD) before the change
    #: began and since (None: no timed answers).
    fast_share_before: Mapped[float | None] = mapped_column(Float)
    fast_share_since: Mapped[float | None] = mapped_column(Float)
    mean_time_residual_since: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column()


#: Test length at which the false-positive rate of notes stored before per-length thresholds
#: (one set, chosen on 30-item adaptive tests; benchmarks/RESULTS.md, issue 17) was measured.
LEGACY_MEASURED_N_ANSWERS = 30


class SessionIntegrity(Base):
    """Integrity evidence of one finished session and the notes the recruiter sees."""

    __tablename__ = "session_integrity"

    session_id: Mapped[int] = mapped_column(ForeignKey("test_sessions.id"), primary_key=True)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    n_answers: Mapped[int] = mapped_column(Integer)
    n_timed: Mapped[int] = mapped_column(Integer)
    rapid: Mapped[int] = mapped_column(Integer)
    preknowledge_llr: Mapped[float] = mapped_column(Float)
    lz_star: Mapped[float | None] = mapped_column(Float)
    #: ``[{"kind", "text", "false_positive_rate", "measured_n_answers"}]``
    #: (`calibration.forensics.IntegrityNote`): the rate quoted and the test length it was
    #: measured at. Rows stored before the thresholds were chosen per test length have no
    #: ``measured_n_answers``; read them through `stored_notes`.
    notes: Mapped[list[Any]] = mapped_column(default=list)

    def stored_notes(self) -> tuple[dict[str, Any], ...]:
        """The notes as stored, each with the rate it was stored with; a note stored without
        ``measured_n_answers`` gets `LEGACY_MEASURED_N_ANSWERS` (the one set of thresholds
        used then was chosen and measured on 30-item tests)."""
        return tuple({"measured_n_answers": LEGACY_MEASURED_N_ANSWERS, **n}
                     for n in self.notes or ())
