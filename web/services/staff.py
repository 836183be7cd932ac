"""Recruiter use cases: invitations, candidate lists. Organisation-scoped (sign-in and
accounts: `web.services.accounts`).

Every function takes the caller's organisation id and only ever touches rows of that
organisation; a row of another organisation is reported as not found (`NotFound`), so that its
existence is not revealed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from item_bank import repository as repo
from item_bank.models import (
    Assessment,
    Candidate,
    CandidateSession,
    Invitation,
    StaffUser,
    as_utc,
    utcnow,
)
from web.db import get_db, unit_of_work
from web.services import audit, retakes, webhooks

MAX_INVITATIONS_PER_REQUEST = 500
MAX_NAME_LENGTH = repo.NAME_MAX


class NotFound(LookupError):
    """No such row in the caller's organisation."""


@dataclass(frozen=True)
class CandidateRow:
    invitation_id: int
    candidate_public_id: str
    name: str | None
    email: str | None
    assessment: str
    status: str
    invited_at: dt.datetime
    expires_at: dt.datetime
    session_id: int | None
    finished_at: dt.datetime | None
    #: An earlier invitation of the organisation went to the same e-mail address inside the
    #: assessment's retake window (`web.services.retakes`).
    retake: bool = False


@dataclass(frozen=True)
class NewInvitation:
    invitation_id: int
    candidate_public_id: str
    name: str | None
    link: str
    expires_at: dt.datetime


def display_status(invitation: Invitation, session: CandidateSession | None,
                   now: dt.datetime | None = None) -> str:
    """invited / in progress / completed / timed out / expired / revoked."""
    now = now or utcnow()
    if invitation.status == "revoked":
        return "revoked"
    if session is not None:
        return {"in_progress": "in progress", "timed_out": "timed out"}.get(
            session.status, session.status)
    if invitation.status == "expired" or as_utc(invitation.expires_at) <= now:
        return "expired"
    return "invited"


def assessments(org_id: int, db: Session | None = None) -> list[Assessment]:
    db = db or get_db()
    return list(db.scalars(select(Assessment).where(Assessment.organisation_id == org_id)
                           .order_by(Assessment.name)))


def assessment(org_id: int, assessment_id: int, db: Session | None = None) -> Assessment:
    db = db or get_db()
    row = db.get(Assessment, assessment_id)
    if row is None or row.organisation_id != org_id:
        raise NotFound("no such assessment")
    return row


#: Rows per page of the candidate lists (web page and API default), and the largest page the
#: API serves.
PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class CandidatePage:
    rows: list[CandidateRow]
    total: int
    page: int
    page_size: int

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.total


def candidates_page(org_id: int, assessment_id: int | None = None, page: int = 1,
                    page_size: int = PAGE_SIZE) -> CandidatePage:
    """One page (newest first) of the organisation's invitations, and how many there are."""
    page, page_size = max(1, page), min(max(1, page_size), MAX_PAGE_SIZE)
    db = get_db()
    count = (select(func.count(Invitation.id))
             .join(Assessment, Invitation.assessment_id == Assessment.id)
             .where(Assessment.organisation_id == org_id))
    if assessment_id is not None:
        count = count.where(Assessment.id == assessment_id)
    total = int(db.scalar(count) or 0)
    offset = (page - 1) * page_size
    # past the end: no query (an offset beyond the database's integers would fail in the driver)
    rows = candidates(org_id, assessment_id, limit=page_size, offset=offset) \
        if offset < total else []
    return CandidatePage(rows, total, page, page_size)


def candidates(org_id: int, assessment_id: int | None = None, *, limit: int | None = None,
               offset: int = 0) -> list[CandidateRow]:
    db = get_db()
    stmt = (select(Invitation, Candidate, Assessment, CandidateSession)
            .join(Candidate, Invitation.candidate_id == Candidate.id)
            .join(Assessment, Invitation.assessment_id == Assessment.id)
            .outerjoin(CandidateSession, CandidateSession.invitation_id == Invitation.id)
            .where(Assessment.organisation_id == org_id)
            .order_by(Invitation.created_at.desc(), Invitation.id.desc()))
    if assessment_id is not None:
        stmt = stmt.where(Assessment.id == assessment_id)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    now = utcnow()
    found = db.execute(stmt).all()
    retake = retakes.retake_invitations(db, org_id, [inv.id for inv, *_ in found])
    return [CandidateRow(inv.id, cand.public_id, cand.name, cand.email, a.name,
                         display_status(inv, sess, now), inv.created_at, inv.expires_at,
                         sess.id if sess else None, sess.finished_at if sess else None,
                         inv.id in retake)
            for inv, cand, a, sess in found]


def clean_name(value: str | None, row: int) -> str | None:
    if value is None:
        return None
    return repo.check_name(value, f"row {row}: field 'name'") or None


def parse_invitation_csv(data: bytes) -> list[tuple[str | None, str | None]]:
    """``name[,email]`` rows (header required) → (name, email) pairs; errors name the row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "name" not in header:
        raise ValueError("row 1: the header must contain a 'name' column (and optionally "
                         "'email')")
    i_name, i_mail = header.index("name"), header.index("email") if "email" in header else None
    out = []
    for row_no, row in enumerate(reader, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"row {row_no}: {len(row)} fields, header has {len(header)}")
        email = row[i_mail].strip() if i_mail is not None else None
        if email and ("@" not in email or len(email) > 320
                      or any(ord(ch) < 32 or ch == "\x7f" for ch in email)):
            raise ValueError(f"row {row_no}: field 'email' is not an e-mail address")
        out.append((clean_name(row[i_name], row_no), email or None))
        if len(out) > MAX_INVITATIONS_PER_REQUEST:
            raise ValueError(f"at most {MAX_INVITATIONS_PER_REQUEST} invitations per upload")
    if not out:
        raise ValueError("the file has no candidate rows")
    return out


def create_invitations(org_id: int, user_id: int | None, assessment_id: int,
                       people: Sequence[tuple[str | None, str | None]], base_url: str,
                       expires_in_days: int = 14) -> list[NewInvitation]:
    """One invitation per (name, email); the links (with their tokens) are returned only here."""
    if not 1 <= len(people) <= MAX_INVITATIONS_PER_REQUEST:
        raise ValueError(f"between 1 and {MAX_INVITATIONS_PER_REQUEST} invitations at a time")
    if not 1 <= expires_in_days <= 365:
        raise ValueError("field 'expires_in_days' must be between 1 and 365")
    with unit_of_work() as db:
        target = assessment(org_id, assessment_id, db)
        user = db.get(StaffUser, user_id) if user_id is not None else None
        issued = repo.create_invitations(db, target, len(people),
                                         expires_in=dt.timedelta(days=expires_in_days),
                                         created_by=user,
                                         candidate_names=[name for name, _ in people])
        out = []
        for (name, email), inv in zip(people, issued, strict=True):
            if email:
                cand = db.scalar(select(Candidate)
                                 .where(Candidate.public_id == inv.candidate_public_id))
                if cand is None:  # created with the invitation just above, in this transaction
                    raise LookupError(f"candidate {inv.candidate_public_id} of invitation "
                                      f"{inv.invitation_id} not found")
                cand.email = email
            out.append(NewInvitation(inv.invitation_id, inv.candidate_public_id, name,
                                     f"{base_url}/t/{inv.token}", inv.expires_at))
        audit.record(db, actor=user, action="invitations.created",
                     target=f"assessment {target.slug}",
                     detail={"count": len(out), "assessment_id": target.id,
                             "invitation_ids": [i.invitation_id for i in out]},
                     organisation_id=None if user is not None else org_id)
        return out


def revoke_invitation(org_id: int, invitation_id: int, actor_id: int | None = None) -> None:
    """Revoke an invitation (ends a session in progress); ``actor_id`` is recorded in the
    audit log."""
    with unit_of_work() as db:
        inv = db.get(Invitation, invitation_id)
        if inv is None or inv.assessment.organisation_id != org_id:
            raise NotFound("no such invitation")
        if inv.status in ("completed",):
            raise ValueError("a completed assessment cannot be revoked")
        inv.status = "revoked"
        sess = db.scalar(select(CandidateSession)
                         .where(CandidateSession.invitation_id == inv.id))
        if sess is not None and sess.status == "in_progress":
            repo.finish_session(db, sess, "abandoned")
            webhooks.session_event(db, sess, "session.abandoned")
        elif sess is None:
            webhooks.invitation_event(db, inv, "invitation.revoked")
        audit.record(db, actor=db.get(StaffUser, actor_id) if actor_id else None,
                     action="invitation.revoked", target=f"invitation {inv.id}",
                     detail={"candidate": inv.candidate.public_id if inv.candidate else None,
                             "assessment_id": inv.assessment_id}, organisation_id=org_id)
