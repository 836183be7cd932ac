"""Retakes (issue 17): a candidate invited again — the same e-mail address within the
organisation, inside the assessment's retake window (``security.retake_window_days``) — gets a
test with no item seen before where the bank allows it, and the recruiter sees that it is a
retake and the earlier results.

"Seen before" means served in an earlier session of the same person (same e-mail, compared
case-insensitively) of the organisation on the same bank, started inside the window. "Where the
bank allows it": a skill's seen items are excluded only if the skill keeps at least as many
unseen operational items as the test may ask of it; otherwise that skill's items may repeat
(and the session's blueprint records which items were excluded: the replay uses the same copy).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import CatEngine
from item_bank.forensics_models import check_security, session_security
from item_bank.models import (
    Assessment,
    Candidate,
    CandidateSession,
    Invitation,
    Item,
    OverallResult,
    Response,
    as_utc,
)


@dataclass(frozen=True)
class EarlierSession:
    session_id: int
    assessment: str
    started_at: dt.datetime
    status: str
    overall_theta: float | None


def window(assessment: Assessment) -> dt.timedelta:
    return dt.timedelta(days=check_security(assessment.security)["retake_window_days"])


def session_window(row: CandidateSession) -> dt.timedelta:
    """The retake window a session started under (its copy of the settings; a later change
    of the assessment's window does not change what its report counts as earlier)."""
    days = session_security(row.security, row.assessment.security)["retake_window_days"]
    return dt.timedelta(days=days)


def _earlier(db: Session, invitation: Invitation, since: dt.datetime, bank_id: int | None):
    email = (invitation.candidate.email or "").strip().lower()
    if not email:
        return None
    stmt = (select(CandidateSession)
            .join(Candidate, CandidateSession.candidate_id == Candidate.id)
            .join(Assessment, CandidateSession.assessment_id == Assessment.id)
            .where(Candidate.organisation_id == invitation.candidate.organisation_id,
                   func.lower(Candidate.email) == email,
                   CandidateSession.invitation_id != invitation.id,
                   CandidateSession.started_at >= since))
    if bank_id is not None:
        stmt = stmt.where(Assessment.bank_id == bank_id)
    return stmt


def seen_items(db: Session, invitation: Invitation, now: dt.datetime) -> set[str]:
    """External ids of the items this person answered in earlier sessions of the organisation
    on the assessment's bank inside its retake window (empty: not a retake, or window 0)."""
    assessment = invitation.assessment
    span = window(assessment)
    if span <= dt.timedelta(0):
        return set()
    earlier = _earlier(db, invitation, now - span, assessment.bank_id)
    if earlier is None:
        return set()
    ids = earlier.with_only_columns(CandidateSession.id).scalar_subquery()
    return set(db.scalars(select(Item.external_id).join(Response, Response.item_id == Item.id)
                          .where(Response.session_id.in_(ids))))


def exclusions(engine: CatEngine, seen: set[str]) -> tuple[str, ...]:
    """The seen items the bank allows to exclude: per skill of the blueprint, all of its seen
    items when enough unseen selectable items remain for the most the test can ask of the
    skill — its maximum, or the test's maximum less the other skills' minimums if smaller —,
    else none of that skill's."""
    if not seen:
        return ()
    ids = np.asarray(engine.pool.bank.item_ids)
    is_seen = np.isin(ids, list(seen))
    out: list[str] = []
    total_min = int(engine.skill_min.sum())
    for k, tab in enumerate(engine.tables):
        idx = tab.idx
        free = ~engine.base_excluded[idx]
        need = min(int(engine.skill_max[k]),
                   engine.blueprint.max_items - (total_min - int(engine.skill_min[k])))
        if int((free & ~is_seen[idx]).sum()) >= need:
            out.extend(str(i) for i in ids[idx][is_seen[idx] & free])
    return tuple(sorted(out))


def earlier_sessions(db: Session, invitation: Invitation, within: dt.timedelta | None = None
                     ) -> list[EarlierSession]:
    """The person's earlier sessions in the organisation (any assessment), started before this
    invitation was created and inside the retake window of this invitation's assessment."""
    span = within if within is not None else window(invitation.assessment)
    created = as_utc(invitation.created_at)
    stmt = _earlier(db, invitation, created - span, None)
    if stmt is None or span <= dt.timedelta(0):
        return []
    rows = db.execute(stmt.where(CandidateSession.started_at <= created)
                      .add_columns(Assessment.name, OverallResult.theta)
                      .outerjoin(OverallResult, OverallResult.session_id == CandidateSession.id)
                      .order_by(CandidateSession.started_at)).all()
    return [EarlierSession(s.id, name, s.started_at, s.status, theta) for s, name, theta in rows]


def retake_invitations(db: Session, organisation_id: int, invitation_ids: Sequence[int]
                       ) -> set[int]:
    """Which of these invitations are retakes: an earlier invitation of the organisation to
    the same e-mail address, created inside the retake window of the later one — the window its
    session started under (the session's copy of the settings, as its report uses), or, before
    it starts, its assessment's current one."""
    if not invitation_ids:
        return set()
    rows = db.execute(select(Invitation.id, func.lower(Candidate.email), Invitation.created_at,
                             Assessment.security, CandidateSession.security)
                      .join(Candidate, Invitation.candidate_id == Candidate.id)
                      .join(Assessment, Invitation.assessment_id == Assessment.id)
                      .outerjoin(CandidateSession,
                                 CandidateSession.invitation_id == Invitation.id)
                      .where(Assessment.organisation_id == organisation_id,
                             Candidate.email.is_not(None),
                             func.lower(Candidate.email).in_(
                                 select(func.lower(Candidate.email))
                                 .join(Invitation, Invitation.candidate_id == Candidate.id)
                                 .where(Invitation.id.in_(list(invitation_ids)))))).all()
    by_email: dict[str, list[tuple[int, dt.datetime]]] = {}
    span = {}
    for inv_id, email, created, security, started_under in rows:
        by_email.setdefault(email, []).append((inv_id, as_utc(created)))
        days = session_security(started_under, security)["retake_window_days"]
        span[inv_id] = dt.timedelta(days=days)
    out = set()
    for invs in by_email.values():
        for inv_id, created in invs:
            if inv_id in invitation_ids and span[inv_id] > dt.timedelta(0) and any(
                    other != inv_id and (t < created or (t == created and other < inv_id))
                    and t >= created - span[inv_id] for other, t in invs):
                out.add(inv_id)
    return out


def earlier_sessions_of(organisation_id: int, session_id: int) -> list[EarlierSession]:
    """`earlier_sessions` of an organisation's session (empty for another organisation's)."""
    from web.db import get_db

    db = get_db()
    row = db.get(CandidateSession, session_id)
    if row is None or row.assessment.organisation_id != organisation_id:
        return []
    return earlier_sessions(db, row.invitation, session_window(row))
