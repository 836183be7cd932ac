"""Human oversight and explanations (issue 21; GDPR article 22, EU AI Act art. 14).

Proficio decides nothing about a candidate: it measures and reports. A person reads each result
and marks it **reviewed** (the result was looked at and may be used) or **set aside** (it must
not be used, e.g. the candidate was disturbed or an accommodation was missing), always with a
reason; every review is kept and recorded in the audit log, and the newest is shown with the
report and the comparison.

`explanation` is what a candidate may be told about their result — on request, through the
recruiter, or at the end of the test when the organisation enables it: what was measured, how
the test adapted, and the scores with their uncertainty in plain words. It never names a
question, an answer or a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from item_bank.accountability_models import REVIEW_STATUSES, ResultReview
from item_bank.models import CandidateSession, Skill, StaffUser
from web.db import get_db, unit_of_work
from web.services import audit, reports
from web.services.review_state import Review, current_review
from web.services.staff import NotFound

MAX_REASON = 2000


class NotFinished(ValueError):
    """The session has no result to review yet."""


def review_result(org_id: int, session_id: int, actor_id: int, status: str,
                  reason: str) -> Review:
    """Mark a finished session's result ``reviewed`` or ``set_aside`` with a reason (recorded in
    the audit log). ValueError names the bad field; `NotFound` for another organisation's."""
    with unit_of_work() as db:
        row = db.get(CandidateSession, session_id)
        if row is None or row.assessment.organisation_id != org_id:
            raise NotFound("no such result")
        if status not in REVIEW_STATUSES:
            raise ValueError(f"field 'status' must be one of {', '.join(REVIEW_STATUSES)}")
        reason = (reason or "").strip()
        if not reason:
            raise ValueError("field 'reason' is required: say why")
        if len(reason) > MAX_REASON:
            raise ValueError(f"field 'reason' is longer than {MAX_REASON} characters")
        if row.status not in ("completed", "timed_out"):
            raise NotFinished("only a finished session's result can be reviewed")
        actor = db.get(StaffUser, actor_id)
        assert actor is not None
        db.add(ResultReview(session_id=session_id, status=status, reason=reason,
                            reviewed_by_id=actor_id, reviewer=actor.email))
        audit.record(db, actor=actor, action=f"result.{status}", target=f"session {session_id}",
                     detail={"status": status, "reason": reason})
        db.flush()
        review = current_review(db, session_id)
        assert review is not None
        return review


@dataclass(frozen=True)
class SkillExplanation:
    name: str
    description: str
    measured: bool
    n_items: int
    score: float | None
    lower90: float | None
    upper90: float | None
    precision: str
    decision: str | None


@dataclass(frozen=True)
class Explanation:
    assessment: str
    status: str
    n_questions: int
    #: the stop reason's code (`engine.STOP_REASONS` or ``timed_out``); the page words it
    stop: str
    overall: tuple[float, float, float] | None
    skills: tuple[SkillExplanation, ...]
    cut_score: float | None


def _precision(lower: float, upper: float) -> str:
    """``precise`` (90 % interval at most 100 points wide: ±0.5 SD of the norm group),
    ``moderate`` (up to 200) or ``rough``; the page words them."""
    width = upper - lower
    return "precise" if width <= 100 else "moderate" if width <= 200 else "rough"


def explanation(org_id: int, session_id: int, db: Session | None = None) -> Explanation:
    """The candidate-facing explanation of a finished session (`NotFound` otherwise)."""
    db = db or get_db()
    rep = reports.report(org_id, session_id, db)
    row = db.get(CandidateSession, session_id)
    if row is None or row.status not in ("completed", "timed_out"):
        raise NotFound("no finished result")
    descriptions = {s.slug: s.description for s in db.scalars(select(Skill))}
    skills = tuple(
        SkillExplanation(s.skill_name, descriptions.get(s.skill, ""), s.measured, s.n_items,
                         s.score, s.lower90, s.upper90,
                         _precision(s.lower90, s.upper90)
                         if s.lower90 is not None and s.upper90 is not None else "none",
                         s.decision)
        for s in rep.skills)
    stop = "timed_out" if row.status == "timed_out" else \
        next((s.stop_reason for s in rep.skills), "")
    overall = None if rep.overall is None else (rep.overall.score, rep.overall.lower90,
                                                rep.overall.upper90)
    return Explanation(rep.assessment, row.status, rep.n_questions, stop, overall, skills,
                       rep.cut_score)


def end_of_test_explanation(session_id: int) -> Explanation | None:
    """The explanation shown to the candidate on the last page, when their organisation
    enables it (`OrganisationPrivacy.explain_to_candidates`) and the result exists."""
    from web.services.privacy import settings

    db = get_db()
    row = db.get(CandidateSession, session_id)
    if row is None or row.status not in ("completed", "timed_out"):
        return None
    org_id = row.assessment.organisation_id
    if not settings(db, org_id).explain_to_candidates:
        return None
    return explanation(org_id, session_id, db)
