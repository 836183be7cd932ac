"""Testing accommodations a recruiter grants one candidate: extra time and a break.

Extra time is a share of the assessment's time limit (25 %, 50 %, 100 % are common
accommodations, e.g. for dyslexia or a motor impairment); a break stops the clock for up to the
granted minutes (`web.services.candidate.start_break`). Granting while a test runs moves its
deadline at once. Both are reported with the result. Organisation-scoped like every staff use
case: another organisation's invitation is `NotFound`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select

from item_bank.models import (
    Accommodation,
    CandidateSession,
    Invitation,
    Response,
    as_utc,
    utcnow,
)
from web.db import get_db, unit_of_work
from web.services.staff import NotFound, display_status

EXTRA_TIME_CHOICES = (0, 25, 50, 100)
MAX_BREAK_MINUTES = 240
MAX_NOTE = 500


@dataclass(frozen=True)
class InvitationSummary:
    """What a recruiter sees before acting on one invitation."""

    invitation_id: int
    candidate_name: str | None
    candidate_public_id: str
    assessment: str
    status: str
    answered: int
    time_limit_minutes: int | None
    extra_time_percent: int
    break_minutes: int
    note: str
    finished: bool


def summary(org_id: int, invitation_id: int) -> InvitationSummary:
    db = get_db()
    inv = db.get(Invitation, invitation_id)
    if inv is None or inv.assessment.organisation_id != org_id:
        raise NotFound("no such invitation")
    sess = db.scalar(select(CandidateSession).where(CandidateSession.invitation_id == inv.id))
    answered = 0
    if sess is not None:
        answered = db.scalar(select(func.count(Response.id))
                             .where(Response.session_id == sess.id)) or 0
    acc = inv.accommodation
    status = display_status(inv, sess)
    return InvitationSummary(inv.id, inv.candidate.name, inv.candidate.public_id,
                             inv.assessment.name, status, int(answered),
                             inv.assessment.time_limit_minutes,
                             acc.extra_time_percent if acc else 0,
                             acc.break_minutes if acc else 0, acc.note if acc else "",
                             status not in ("invited", "in progress"))


def parse_form(extra: str, break_minutes: str, note: str) -> tuple[int, int, str]:
    """Validated (extra %, break minutes, note) from form fields; errors name the field."""
    try:
        extra_pct = int(extra or 0)
    except ValueError:
        raise ValueError("field 'extra_time_percent': expected a whole number") from None
    if extra_pct not in EXTRA_TIME_CHOICES:
        raise ValueError(f"field 'extra_time_percent': choose one of {EXTRA_TIME_CHOICES}")
    try:
        minutes = int(break_minutes or 0)
    except ValueError:
        raise ValueError("field 'break_minutes': expected a whole number of minutes") from None
    if not 0 <= minutes <= MAX_BREAK_MINUTES:
        raise ValueError(f"field 'break_minutes': between 0 and {MAX_BREAK_MINUTES}")
    note = (note or "").strip()
    if len(note) > MAX_NOTE or any(ord(ch) < 32 and ch not in "\n\r\t" for ch in note):
        raise ValueError(f"field 'note': at most {MAX_NOTE} characters, no control characters")
    return extra_pct, minutes, note


def grant(org_id: int, user_id: int | None, invitation_id: int, extra_time_percent: int,
          break_minutes: int, note: str = "") -> None:
    """Set the invitation's accommodations; a running test's deadline moves by the change in
    extra time. Refused (`ValueError`) once the test has ended."""
    with unit_of_work() as db:
        inv = db.get(Invitation, invitation_id)
        if inv is None or inv.assessment.organisation_id != org_id:
            raise NotFound("no such invitation")
        sess = db.scalar(select(CandidateSession)
                         .where(CandidateSession.invitation_id == inv.id).with_for_update())
        if display_status(inv, sess) not in ("invited", "in progress"):
            raise ValueError("this invitation has ended; accommodations can no longer change")
        acc = inv.accommodation
        if acc is None:
            acc = Accommodation(invitation_id=inv.id, extra_time_percent=0, break_minutes=0,
                                break_used_seconds=0, note="")
            db.add(acc)
        old_extra = acc.extra_time_percent
        limit = inv.assessment.time_limit_minutes
        if sess is not None and sess.time_limit_minutes is not None:
            limit = sess.time_limit_minutes  # the limit this session started under
        if sess is not None and sess.status == "in_progress" and sess.deadline is not None \
                and limit:
            delta = dt.timedelta(minutes=limit * (extra_time_percent - old_extra) / 100)
            sess.deadline = max(as_utc(sess.deadline) + delta, utcnow())
        acc.extra_time_percent = extra_time_percent
        acc.break_minutes = break_minutes
        acc.note = note
        acc.granted_by_id = user_id
        acc.granted_at = utcnow()
