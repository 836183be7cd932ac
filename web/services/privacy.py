"""Candidates' personal data under control (issue 21; GDPR articles 15 and 17).

* **Settings** per organisation (`OrganisationPrivacy`): a retention period after which
  candidates' personal data is erased automatically, and whether candidates see an explanation
  of their result at the end of the test.
* **Erasure** (`erase_candidate`): the candidate's name and e-mail address, the invitation and
  session tokens (replaced by hashes of fresh random values, so no link works again), and the
  free text about them — the accommodation note, the reasons of result reviews (here and in the
  audit log's copies), names and addresses in queued webhook payloads. Responses, skill results,
  the engine state and parameter versions stay, keyed by the candidate's pseudonymous public
  id: calibrations, replays and the append-only response log are unaffected. One request is
  recorded in the audit log (who, which public id, never the erased values).
* **Retention** (`erase_expired`): run every minute by the scheduled maintenance
  (`web.jobs`), erasing candidates whose last activity is older than their organisation's period.
* **Right of access** (`candidate_export`): one candidate's data as JSON
  (``proficio-candidate-export/1``) — without item content, keys or per-item scores, which would
  disclose the test (GDPR art. 15(4): the rights of others).

Nothing here logs a personal value: log lines name public ids and counts only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from item_bank.account_models import AuditEvent
from item_bank.accountability_models import CandidateErasure, OrganisationPrivacy, ResultReview
from item_bank.db import transaction
from item_bank.models import (
    Accommodation,
    Candidate,
    CandidateSession,
    Invitation,
    Response,
    Skill,
    SkillResult,
    StaffUser,
    Webhook,
    WebhookDelivery,
    as_utc,
    utcnow,
)
from item_bank.repository import get_organisation
from web.db import get_db, unit_of_work
from web.services import audit
from web.services.staff import NotFound

log = logging.getLogger(__name__)

EXPORT_SCHEMA = "proficio-candidate-export/1"
ERASED = "(erased)"
#: Candidates erased per organisation in one scheduled run (the next run continues).
RETENTION_BATCH = 200
MAX_RETENTION_DAYS = 3650
#: Keys of a webhook payload (the event and its report) holding personal values or free text.
PAYLOAD_PERSONAL_KEYS = ("candidate_name", "candidate_email", "note", "reason")


_ADDRESS = re.compile(r"[^\s@<>()'\"\[\]{},;:]+@[^\s@<>()'\"\[\]{},;:]+")


def redact_addresses(text: str) -> str:
    """``text`` with every e-mail address replaced by ``<address>`` (for log lines that carry
    a mail relay's reply, which may name the recipient)."""
    return _ADDRESS.sub("<address>", text)


@dataclass(frozen=True)
class PrivacySettings:
    retention_days: int | None
    explain_to_candidates: bool


def settings(db: Session, org_id: int) -> PrivacySettings:
    row = db.get(OrganisationPrivacy, org_id)
    return PrivacySettings(None, False) if row is None else \
        PrivacySettings(row.retention_days, bool(row.explain_to_candidates))


def parse_retention(raw: object) -> int | None:
    """A retention period in days from a form or JSON value ('' / None: keep until erased on
    request); ValueError naming the field otherwise."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        days = int(str(raw).strip()) if not isinstance(raw, int) or isinstance(raw, bool) \
            else raw
    except ValueError:
        raise ValueError(f"field 'retention_days': {str(raw)[:20]!r} is not a whole number of "
                         "days") from None
    if isinstance(days, bool) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(f"field 'retention_days' must be between 1 and {MAX_RETENTION_DAYS} "
                         "days, or empty to keep data until erased on request")
    return days


def update_settings(org_id: int, actor_id: int, retention_days: int | None,
                    explain_to_candidates: bool) -> PrivacySettings:
    """Change an organisation's privacy settings (recorded in the audit log)."""
    with unit_of_work() as db:
        row = db.get(OrganisationPrivacy, org_id)
        before = settings(db, org_id)
        if row is None:
            row = OrganisationPrivacy(organisation_id=org_id)
            db.add(row)
        row.retention_days = retention_days
        row.explain_to_candidates = bool(explain_to_candidates)
        row.updated_by_id = actor_id
        db.flush()
        after = settings(db, org_id)
        audit.record(db, actor=db.get(StaffUser, actor_id), action="privacy.settings_changed",
                     target="organisation", detail={"from": before.__dict__,
                                                    "to": after.__dict__})
        return after


# -- erasure ---------------------------------------------------------------------------------

def _candidate(db: Session, org_id: int, public_id: str) -> Candidate:
    cand = db.scalar(select(Candidate).where(Candidate.public_id == public_id,
                                             Candidate.organisation_id == org_id))
    if cand is None:
        raise NotFound("no such candidate")
    return cand


def _scrub(value: Any, keys: Sequence[str]) -> Any:
    if isinstance(value, dict):
        return {k: (None if k in keys else _scrub(v, keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, keys) for v in value]
    return value


def erase_candidate(db: Session, cand: Candidate, *, reason: str,
                    actor: StaffUser | None = None) -> bool:
    """Erase ``cand``'s personal data inside the caller's transaction (see the module
    docstring); False when it was erased before."""
    if db.get(CandidateErasure, cand.id) is not None:
        return False
    cand.name = None
    cand.email = None
    invitations = list(db.scalars(select(Invitation).where(Invitation.candidate_id == cand.id)))
    sessions = list(db.scalars(select(CandidateSession)
                               .where(CandidateSession.candidate_id == cand.id)))
    for inv in invitations:
        inv.token_hash = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        if inv.status == "pending":
            inv.status = "revoked"
        acc = db.scalar(select(Accommodation).where(Accommodation.invitation_id == inv.id))
        if acc is not None and acc.note:
            acc.note = ERASED
    session_ids = [s.id for s in sessions]
    for s in sessions:
        s.token_hash = None
    if session_ids:
        for review in db.scalars(select(ResultReview)
                                 .where(ResultReview.session_id.in_(session_ids))):
            review.reason = ERASED
        targets = [f"session {i}" for i in session_ids]
        for event in db.scalars(select(AuditEvent).where(AuditEvent.target.in_(targets))):
            if isinstance(event.detail, dict) and "reason" in event.detail:
                event.detail = {**event.detail, "reason": ERASED}
    inv_ids = {i.id for i in invitations}
    for delivery in db.scalars(select(WebhookDelivery).join(Webhook)
                               .where(Webhook.organisation_id == cand.organisation_id)):
        data = (delivery.payload or {}).get("data") or {}
        if data.get("invitation_id") in inv_ids or data.get("session_id") in session_ids:
            delivery.payload = _scrub(delivery.payload, PAYLOAD_PERSONAL_KEYS)
    db.add(CandidateErasure(candidate_id=cand.id, reason=reason,
                            erased_by_id=None if actor is None else actor.id))
    db.flush()
    return True


def erase_on_request(org_id: int, public_id: str, actor_id: int | None) -> bool:
    """Erase one candidate of ``org_id`` on request (a recruiter, an admin or the command line,
    ``actor_id`` None); recorded in the audit log. False when already erased."""
    with unit_of_work() as db:
        return erase_requested(db, org_id, public_id,
                               None if actor_id is None else db.get(StaffUser, actor_id))


def erase_requested(db: Session, org_id: int, public_id: str, actor: StaffUser | None) -> bool:
    """`erase_on_request` inside the caller's transaction (the ``proficio candidates erase``
    command's entry)."""
    cand = _candidate(db, org_id, public_id)
    done = erase_candidate(db, cand, reason="request", actor=actor)
    if done:
        audit.record(db, actor=actor, action="candidate.erased",
                     target=f"candidate {cand.public_id}", detail={"reason": "request"},
                     organisation_id=org_id)
        log.info("candidate %s: personal data erased on request", public_id)
    return done


def _last_activity(db: Session, cand_id: int) -> tuple[dt.datetime | None, bool]:
    """The candidate's last activity and whether anything is still open (an unfinished
    session or an unexpired pending invitation)."""
    now = utcnow()
    last: dt.datetime | None = None
    open_ = False
    for inv in db.scalars(select(Invitation).where(Invitation.candidate_id == cand_id)):
        last = max(filter(None, (last, as_utc(inv.created_at))))
        if inv.status in ("pending", "started") and as_utc(inv.expires_at) > now:
            open_ = True
    for s in db.scalars(select(CandidateSession).where(CandidateSession.candidate_id == cand_id)):
        t = as_utc(s.finished_at or s.started_at)
        last = max(filter(None, (last, t)))
        if s.status == "in_progress":
            open_ = True
    return last, open_


def erase_expired(engine: Engine, now: dt.datetime | None = None) -> int:
    """Erase the personal data of every candidate whose organisation's retention period has
    passed since their last activity (at most `RETENTION_BATCH` per organisation and run);
    one audit event per organisation and run. Returns the number erased."""
    now = now or utcnow()
    total = 0
    with transaction(engine) as db:
        policies = [(p.organisation_id, p.retention_days) for p in db.scalars(
            select(OrganisationPrivacy).where(OrganisationPrivacy.retention_days.is_not(None)))]
    for org_id, days in policies:
        assert days is not None
        horizon = now - dt.timedelta(days=days)
        with transaction(engine) as db:
            erased_ids = select(CandidateErasure.candidate_id)
            candidates = db.scalars(select(Candidate)
                                    .where(Candidate.organisation_id == org_id,
                                           Candidate.created_at < horizon,
                                           Candidate.id.not_in(erased_ids))
                                    .order_by(Candidate.id).limit(RETENTION_BATCH * 5)).all()
            done = []
            for cand in candidates:
                last, open_ = _last_activity(db, cand.id)
                if open_ or (last is not None and last >= horizon):
                    continue
                if erase_candidate(db, cand, reason="retention"):
                    done.append(cand.public_id)
                if len(done) >= RETENTION_BATCH:
                    break
            if done:
                audit.record(db, actor=None, action="candidates.erased_by_retention",
                             target="organisation", organisation_id=org_id,
                             detail={"count": len(done), "retention_days": days,
                                     "candidates": done})
        if done:
            log.info("retention: personal data of %d candidate(s) of organisation %s erased",
                     len(done), org_id)
        total += len(done)
    return total


# -- right of access -------------------------------------------------------------------------

def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else as_utc(t).isoformat()


def candidate_export(org_id: int, public_id: str, db: Session | None = None
                     ) -> dict[str, object]:
    """Everything stored about one candidate of ``org_id``, as JSON (schema
    ``proficio-candidate-export/1``, docs/privacy.md)."""
    db = db or get_db()
    cand = _candidate(db, org_id, public_id)
    erasure = db.get(CandidateErasure, cand.id)
    invitations = []
    for inv in db.scalars(select(Invitation).where(Invitation.candidate_id == cand.id)
                          .order_by(Invitation.id)):
        acc = db.scalar(select(Accommodation).where(Accommodation.invitation_id == inv.id))
        invitations.append({
            "invitation_id": inv.id, "assessment": inv.assessment.name, "status": inv.status,
            "created_at": _iso(inv.created_at), "expires_at": _iso(inv.expires_at),
            "emailed_at": _iso(inv.emailed_at), "reminded_at": _iso(inv.reminded_at),
            "accommodation": None if acc is None else {
                "extra_time_percent": acc.extra_time_percent,
                "break_minutes": acc.break_minutes,
                "break_used_seconds": acc.break_used_seconds, "note": acc.note}})
    sessions = []
    for s in db.scalars(select(CandidateSession).where(CandidateSession.candidate_id == cand.id)
                        .order_by(CandidateSession.id)):
        answers = db.execute(select(Response.position, Response.answered_at,
                                    Response.latency_ms)
                             .where(Response.session_id == s.id)
                             .order_by(Response.position)).all()
        results = db.execute(select(SkillResult, Skill).join(Skill)
                             .where(SkillResult.session_id == s.id)).all()
        reviews = db.scalars(select(ResultReview).where(ResultReview.session_id == s.id)
                             .order_by(ResultReview.id)).all()
        sessions.append({
            "session_id": s.id, "assessment": s.assessment.name, "status": s.status,
            "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at),
            "answers": [{"position": p, "answered_at": _iso(t), "latency_ms": ms}
                        for p, t, ms in answers],
            "results": [{"skill": sk.name, "theta": r.theta, "se": r.se,
                         "score": 500 + 100 * r.theta, "n_items": r.n_items,
                         "stop_reason": r.stop_reason, "decision": r.decision,
                         "decision_rule": r.decision_rule} for r, sk in results],
            "reviews": [{"status": v.status, "reason": v.reason, "at": _iso(v.created_at)}
                        for v in reviews]})
    return {
        "schema": EXPORT_SCHEMA,
        "candidate": {"public_id": cand.public_id, "name": cand.name, "email": cand.email,
                      "created_at": _iso(cand.created_at),
                      "organisation": get_organisation(db, cand.organisation_id).name},
        "erasure": None if erasure is None else {"erased_at": _iso(erasure.erased_at),
                                                 "reason": erasure.reason},
        "invitations": invitations,
        "sessions": sessions,
        "withheld": "The questions, their answer keys and the score of each answer are not "
                    "included: they would disclose the test to future candidates. Each "
                    "answer's position and time are listed; the results per skill are the "
                    "scores computed from all answers.",
    }
