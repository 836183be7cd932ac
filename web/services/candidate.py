"""The candidate's use cases: start or resume a session, show the pending item, record answers.

Each function owns its transaction and commits before returning, so an answer is durable
before the next question is shown. The engine state is the only session state; it lives in the
database (`CandidateSession.engine_state`), so any worker can serve the next request.

Safety rules enforced here:

* a double submit of the answer just recorded (double click, back button, retry) is
  acknowledged without recording it again;
* an answer to an item that is not the pending one is refused (`NotPendingError`);
* a finished or timed-out session cannot change (`SessionClosedError`);
* the deadline is checked by the server on every call; past it, the session is scored on what
  was answered and marked ``timed_out``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import Blueprint, CatEngine, CatState
from engine.errors import EngineError
from item_bank import repository as repo
from item_bank.models import CandidateSession, Invitation, Item, Response, utcnow
from web.db import unit_of_work
from web.services.engines import engine_for


class CandidateError(Exception):
    """A refused candidate request; ``status`` is the HTTP status to answer with."""

    status = 400
    code = "bad_request"


class InvitationNotFound(CandidateError):
    status, code = 404, "invitation_not_found"


class InvitationUnavailable(CandidateError):
    status, code = 410, "invitation_unavailable"


class SessionNotFound(CandidateError):
    status, code = 404, "session_not_found"


class SessionClosedError(CandidateError):
    status, code = 409, "session_closed"


class NotPendingError(CandidateError):
    status, code = 409, "not_pending"


class InvalidAnswerError(CandidateError):
    status, code = 422, "invalid_answer"


@dataclass(frozen=True)
class PendingItem:
    """What the candidate may see of an item: its id, stem and options (never the key)."""

    item_id: str
    stem: str
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SessionView:
    session_id: int
    status: str
    assessment: str
    skills: tuple[str, ...]
    pending: PendingItem | None
    answered: int
    max_items: int
    deadline: dt.datetime | None
    token: str | None = None

    @property
    def position(self) -> int:
        return self.answered + 1

    def remaining_seconds(self, now: dt.datetime | None = None) -> int | None:
        if self.deadline is None:
            return None
        left = (_aware(self.deadline) - (now or utcnow())).total_seconds()
        return max(0, int(left))


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _pending_item(db: Session, item_id: str | None) -> PendingItem | None:
    if item_id is None:
        return None
    item = db.scalar(select(Item).where(Item.external_id == item_id))
    if item is None:  # pragma: no cover - the engine only serves items of the bank
        raise SessionNotFound(f"item {item_id!r} is missing from the bank")
    return PendingItem(item.external_id, item.stem,
                       tuple((str(o["id"]), str(o["text"])) for o in item.options))


def _view(db: Session, row: CandidateSession, state: CatState | None, max_items: int,
          token: str | None = None) -> SessionView:
    pending = state.pending if (state is not None and row.status == "in_progress") else None
    answered = db.scalar(select(Response.position).where(Response.session_id == row.id)
                         .order_by(Response.position.desc()).limit(1)) or 0
    assessment = row.assessment
    skills = tuple(str(s.get("skill") if isinstance(s, dict) else s)
                   for s in (assessment.blueprint or {}).get("skills", []))
    return SessionView(row.id, row.status, assessment.name, skills, _pending_item(db, pending),
                       int(answered), max_items, row.deadline, token)


def _finalize(db: Session, row: CandidateSession, engine: CatEngine, state: CatState,
              status: str) -> None:
    """Store per-skill results from the engine and close the session."""
    stop = state.stop_reason or status
    for skill, est in engine.estimates(state).items():
        repo.record_skill_result(db, row.id, skill, est.theta, est.se, est.n_items, stop)
    repo.finish_session(db, row, status)


def _load(db: Session, row: CandidateSession) -> tuple[CatEngine, CatState]:
    engine = engine_for(db, row.assessment)
    return engine, CatState.from_dict(row.engine_state)


def _check_deadline(db: Session, row: CandidateSession, engine: CatEngine, state: CatState,
                    now: dt.datetime) -> bool:
    """Close a running session whose deadline has passed; True when it did."""
    if row.status == "in_progress" and row.deadline is not None and now >= _aware(row.deadline):
        _finalize(db, row, engine, state, "timed_out")
        return True
    return False


def _lock(db: Session, row_id: int) -> CandidateSession:
    """The session row, locked for update (PostgreSQL; SQLite serializes writers already)."""
    row = db.scalar(select(CandidateSession).where(CandidateSession.id == row_id)
                    .with_for_update())
    if row is None:
        raise SessionNotFound("no such session")
    return row


def start_or_resume(invitation_token: str, *, rotate_token: bool = False) -> SessionView:
    """Start the invitation's session, or resume it at exactly the pending item.

    The bearer token of the session is returned when the session starts and, with
    ``rotate_token``, on resume (the old token stops working).
    """
    now = utcnow()
    with unit_of_work() as db:
        invitation = repo.find_invitation(db, invitation_token)
        if invitation is None:
            raise InvitationNotFound("this invitation link is not valid")
        row = db.scalar(select(CandidateSession)
                        .where(CandidateSession.invitation_id == invitation.id))
        if row is None:
            return _start(db, invitation, now)
        row = _lock(db, row.id)
        engine, state = _load(db, row)
        _check_deadline(db, row, engine, state, now)
        token = None
        if rotate_token and row.status == "in_progress":
            token = secrets.token_urlsafe(32)
            row.token_hash = repo.hash_token(token)
        return _view(db, row, state, engine.blueprint.max_items, token)


def _start(db: Session, invitation: Invitation, now: dt.datetime) -> SessionView:
    if invitation.status == "revoked":
        raise InvitationUnavailable("this invitation has been withdrawn")
    if invitation.status != "pending":
        raise InvitationUnavailable(f"this invitation is {invitation.status}")
    if _aware(invitation.expires_at) <= now:
        invitation.status = "expired"
        raise InvitationUnavailable("this invitation has expired")
    engine = engine_for(db, invitation.assessment)
    state = engine.start(seed=secrets.randbits(63))
    limit = invitation.assessment.time_limit_minutes
    deadline = now + dt.timedelta(minutes=limit) if limit else None
    row, token = repo.start_session(db, invitation, engine_state=state.to_dict(),
                                    deadline=deadline)
    if state.finished:  # an empty pool: nothing to ask
        _finalize(db, row, engine, state, "completed")
    return _view(db, row, state, engine.blueprint.max_items, token)


def find_session(session_id: int, token: str) -> CandidateSession | None:
    with unit_of_work() as db:
        row = repo.find_session_by_token(db, token)
        return row if row is not None and row.id == session_id else None


def session_status(session_id: int) -> SessionView:
    now = utcnow()
    with unit_of_work() as db:
        row = _lock(db, session_id)
        engine, state = _load(db, row)
        _check_deadline(db, row, engine, state, now)
        return _view(db, row, state, engine.blueprint.max_items)


def session_for_invitation(invitation_token: str) -> int | None:
    """The id of the invitation's session, if it has started."""
    with unit_of_work() as db:
        invitation = repo.find_invitation(db, invitation_token)
        if invitation is None:
            raise InvitationNotFound("this invitation link is not valid")
        return db.scalar(select(CandidateSession.id)
                         .where(CandidateSession.invitation_id == invitation.id))


def submit_answer(session_id: int, item_id: str, answer: str, *,
                  latency_ms: int | None = None) -> SessionView:
    """Record the answer to the pending item and serve the next one (committed on return)."""
    now = utcnow()
    try:
        with unit_of_work() as db:
            row = _lock(db, session_id)
            engine, state = _load(db, row)
            if _check_deadline(db, row, engine, state, now):
                # commit the time-out, then refuse the late answer
                view = _view(db, row, state, engine.blueprint.max_items)
                late = True
            else:
                late = False
                view = _record(db, row, engine, state, item_id, answer, latency_ms, now)
        if late:
            raise SessionClosedError("the time limit has passed; the answers given before it "
                                     "were scored")
        return view
    except IntegrityError:
        # A concurrent duplicate of this very answer won the race: report the stored outcome.
        view = session_status(session_id)
        with unit_of_work() as db:
            if _already_recorded(db, session_id, item_id, answer):
                return view
        raise NotPendingError("this answer was not recorded; the question changed") from None


def _already_recorded(db: Session, session_id: int, item_id: str, answer: str) -> bool:
    stored = db.scalar(select(Response.raw_answer).join(Item)
                       .where(Response.session_id == session_id, Item.external_id == item_id))
    return stored is not None and stored == answer


def _record(db: Session, row: CandidateSession, engine: CatEngine, state: CatState,
            item_id: str, answer: str, latency_ms: int | None, now: dt.datetime) -> SessionView:
    max_items = engine.blueprint.max_items
    if _already_recorded(db, row.id, item_id, answer):
        return _view(db, row, state, max_items)  # a repeat of an acknowledged answer
    if row.status != "in_progress":
        raise SessionClosedError(f"this session is {row.status.replace('_', ' ')}; it cannot "
                                 "be changed")
    if item_id != state.pending:
        raise NotPendingError("that is not the current question; please answer the question "
                              "shown now")
    item = db.scalar(select(Item).where(Item.external_id == item_id))
    options = {str(o["id"]) for o in item.options}
    if answer not in options:
        raise InvalidAnswerError(f"field 'answer': {answer!r} is not one of the options "
                                 f"{sorted(options)}")
    score = int(answer == item.key)
    try:
        new_state = engine.record(state, item_id, score)
    except EngineError as exc:  # pragma: no cover - guarded above
        raise NotPendingError(str(exc)) from None
    position = len(state.events) + 1
    repo.record_response(db, row.id, item_id, position, answer, score, latency_ms=latency_ms,
                         answered_at=now)
    repo.save_engine_state(db, row, new_state.to_dict(), row.state_version)
    if new_state.finished:
        _finalize(db, row, engine, new_state, "completed")
    return _view(db, row, new_state, max_items)


@dataclass(frozen=True)
class InvitationOverview:
    """What the welcome page tells a candidate before the test starts."""

    assessment: str
    skills: tuple[str, ...]
    max_items: int
    time_limit_minutes: int | None
    expires_at: dt.datetime


def invitation_overview(invitation_token: str) -> InvitationOverview:
    from item_bank.models import Skill

    with unit_of_work() as db:
        invitation = repo.find_invitation(db, invitation_token)
        if invitation is None:
            raise InvitationNotFound("this invitation link is not valid")
        if invitation.status in ("revoked", "expired") or \
                _aware(invitation.expires_at) <= utcnow():
            raise InvitationUnavailable("this invitation is no longer valid")
        assessment = invitation.assessment
        blueprint = Blueprint.from_dict(assessment.blueprint)
        slugs = [s.skill for s in blueprint.skills]
        names = dict(db.execute(select(Skill.slug, Skill.name)).all())
        if not slugs:
            slugs = sorted(names)
        return InvitationOverview(assessment.name, tuple(names.get(s, s) for s in slugs),
                                  blueprint.max_items, assessment.time_limit_minutes,
                                  invitation.expires_at)
