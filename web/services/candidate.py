"""The candidate's use cases: start or resume a session, show the pending item, record answers.

Each function owns its transaction and commits before returning, so an answer is durable
before the next question is shown. The engine state is the only session state; it lives in the
database (`CandidateSession.engine_state`), so any worker can serve the next request. The hot
path (one answer) costs a handful of statements: lock the session row (checking its token),
the bank fingerprint, insert the response, update the state.

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

from engine import Blueprint, CatState
from engine.errors import EngineError
from item_bank import repository as repo
from item_bank.models import (
    CandidateSession,
    Invitation,
    Item,
    Response,
    Skill,
    as_utc,
    utcnow,
)
from item_bank.security import hash_token
from web import observability
from web.db import unit_of_work
from web.services.engines import LiveAssessment, live_assessment


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
        left = (as_utc(self.deadline) - (now or utcnow())).total_seconds()
        return max(0, int(left))



def _view(row: CandidateSession, live: LiveAssessment, state: CatState,
          token: str | None = None) -> SessionView:
    pending = None
    if row.status == "in_progress" and state.pending is not None:
        facts = live.items[state.pending]
        pending = PendingItem(state.pending, facts.stem, facts.options)
    return SessionView(row.id, row.status, pending, len(state.events),
                       live.engine.blueprint.max_items, row.deadline, token)


def _finalize(db: Session, row: CandidateSession, live: LiveAssessment, state: CatState,
              status: str) -> None:
    """Store per-skill results from the engine and close the session."""
    stop = state.stop_reason or status
    for skill, est in live.engine.estimates(state).items():
        repo.record_skill_result(db, row.id, skill, est.theta, est.se, est.n_items, stop)
    repo.finish_session(db, row, status)
    observability.session_finished(db, status)


def _load(db: Session, row: CandidateSession) -> tuple[LiveAssessment, CatState]:
    return (live_assessment(db, row.assessment_id, row.blueprint),
            CatState.from_dict(row.engine_state))


def _check_deadline(db: Session, row: CandidateSession, live: LiveAssessment, state: CatState,
                    now: dt.datetime) -> bool:
    """Close a running session whose deadline has passed; True when it did."""
    if row.status == "in_progress" and row.deadline is not None and now >= as_utc(row.deadline):
        _finalize(db, row, live, state, "timed_out")
        return True
    return False


def _lock(db: Session, session_id: int, token: str | None = None) -> CandidateSession:
    """The session row locked for update (PostgreSQL; SQLite write transactions are exclusive),
    optionally only if ``token`` is its bearer token."""
    stmt = select(CandidateSession).where(CandidateSession.id == session_id)
    if token is not None:
        stmt = stmt.where(CandidateSession.token_hash == hash_token(token))
    row = db.scalar(stmt.with_for_update())
    if row is None:
        raise SessionNotFound("no such session for this token")
    return row


def _find_invitation(db: Session, token: str) -> tuple[Invitation | None, int | None]:
    """The invitation of ``token`` and the id of its session, in one statement.

    Unknown, expired and revoked links take the same path up to the decision — the token is
    always hashed and the same single query always runs — so the response time does not tell
    an attacker whether a guessed link exists (measured in benchmarks/bench_fuzz_tokens.py).
    The lookup is an equality on the SHA-256 of the token: no comparison on the secret itself
    leaks a prefix.
    """
    row = db.execute(select(Invitation, CandidateSession.id)
                     .outerjoin(CandidateSession, CandidateSession.invitation_id == Invitation.id)
                     .where(Invitation.token_hash == hash_token(token or "-"))).first()
    return (None, None) if row is None else (row[0], row[1])


def start_or_resume(invitation_token: str, *, rotate_token: bool = False) -> SessionView:
    """Start the invitation's session, or resume it at exactly the pending item.

    The bearer token of the session is returned when the session starts and, with
    ``rotate_token``, on resume (the old token stops working).
    """
    now = utcnow()
    try:
        return _start_or_resume(invitation_token, rotate_token, now)
    except IntegrityError:
        # A concurrent start of the same invitation inserted its session first (the unique
        # invitation of test_sessions refused ours; PostgreSQL, whose transactions are not
        # serialized like SQLite's write transactions): resume the session it started.
        return _start_or_resume(invitation_token, rotate_token, now)


def _start_or_resume(invitation_token: str, rotate_token: bool, now: dt.datetime
                     ) -> SessionView:
    with unit_of_work() as db:
        invitation, row_id = _find_invitation(db, invitation_token)
        if invitation is None:
            raise InvitationNotFound("this invitation link is not valid")
        if row_id is None:
            return _start(db, invitation, now)
        row = _lock(db, row_id)
        live, state = _load(db, row)
        _check_deadline(db, row, live, state, now)
        token = None
        if rotate_token and row.status == "in_progress":
            token = secrets.token_urlsafe(32)
            row.token_hash = hash_token(token)
        return _view(row, live, state, token)


def _start(db: Session, invitation: Invitation, now: dt.datetime) -> SessionView:
    if invitation.status == "revoked":
        raise InvitationUnavailable("this invitation has been withdrawn")
    if invitation.status != "pending":
        raise InvitationUnavailable(f"this invitation is {invitation.status}")
    if as_utc(invitation.expires_at) <= now:
        invitation.status = "expired"
        raise InvitationUnavailable("this invitation has expired")
    assessment = invitation.assessment
    live = live_assessment(db, assessment.id, assessment.blueprint)
    with observability.ITEM_SELECTION.time():
        state = live.engine.start(seed=secrets.randbits(63))
    limit = assessment.time_limit_minutes
    deadline = now + dt.timedelta(minutes=limit) if limit else None
    row, token = repo.start_session(db, invitation, engine_state=state.to_dict(),
                                    deadline=deadline)
    observability.session_started(db)
    if state.finished:  # an empty pool: nothing to ask
        _finalize(db, row, live, state, "completed")
    return _view(row, live, state, token)


def session_status(session_id: int, token: str | None = None) -> SessionView:
    """Status and pending item (checking ``token`` when given); closes a session past its
    deadline."""
    now = utcnow()
    with unit_of_work() as db:
        row = _lock(db, session_id, token)
        live, state = _load(db, row)
        _check_deadline(db, row, live, state, now)
        return _view(row, live, state)


def session_for_invitation(invitation_token: str) -> int | None:
    """The id of the invitation's session, if it has started.

    An unknown link raises `InvitationNotFound`; a link that can no longer start a session
    (expired or withdrawn, never started) raises `InvitationUnavailable` here, in the same
    single statement, rather than in a second transaction.
    """
    with unit_of_work() as db:
        invitation, row_id = _find_invitation(db, invitation_token)
        if invitation is None:
            raise InvitationNotFound("this invitation link is not valid")
        if row_id is None and (invitation.status in ("revoked", "expired")
                               or as_utc(invitation.expires_at) <= utcnow()):
            raise InvitationUnavailable("this invitation is no longer valid")
        return row_id


def submit_answer(session_id: int, item_id: str, answer: str, *, token: str | None = None,
                  latency_ms: int | None = None) -> SessionView:
    """Record the answer to the pending item and serve the next one (committed on return).

    With ``token`` the session must be the one that bearer token opens.
    """
    now = utcnow()
    try:
        with unit_of_work() as db:
            row = _lock(db, session_id, token)
            live, state = _load(db, row)
            late = _check_deadline(db, row, live, state, now)
            if not late:
                return _record(db, row, live, state, item_id, answer, latency_ms, now)
        raise SessionClosedError("the time limit has passed; the answers given before it "
                                 "were scored")
    except IntegrityError:
        # A concurrent duplicate of this very answer won the race: report the stored outcome.
        with unit_of_work() as db:
            if _stored_answer(db, session_id, item_id) == answer:
                row = _lock(db, session_id, token)
                live, state = _load(db, row)
                return _view(row, live, state)
        raise NotPendingError("this answer was not recorded; the question changed") from None


def _stored_answer(db: Session, session_id: int, item_id: str) -> str | None:
    return db.scalar(select(Response.raw_answer).join(Item)
                     .where(Response.session_id == session_id, Item.external_id == item_id))


def _record(db: Session, row: CandidateSession, live: LiveAssessment, state: CatState,
            item_id: str, answer: str, latency_ms: int | None, now: dt.datetime) -> SessionView:
    answered = any(e.item_id == item_id for e in state.events)
    if answered and _stored_answer(db, row.id, item_id) == answer:
        return _view(row, live, state)  # a repeat of an acknowledged answer
    if row.status != "in_progress":
        raise SessionClosedError(f"this session is {row.status.replace('_', ' ')}; it cannot "
                                 "be changed")
    if item_id != state.pending:
        raise NotPendingError("that is not the current question; please answer the question "
                              "shown now")
    facts = live.items[item_id]
    if answer not in {option_id for option_id, _ in facts.options}:
        raise InvalidAnswerError(f"field 'answer': {answer!r} is not one of the options "
                                 f"{sorted(o for o, _ in facts.options)}")
    score = int(answer == facts.key)
    try:
        with observability.ITEM_SELECTION.time():
            new_state = live.engine.record(state, item_id, score)
    except EngineError as exc:  # pragma: no cover - guarded above
        raise NotPendingError(str(exc)) from None
    db.add(Response(session_id=row.id, item_id=facts.pk, position=len(state.events) + 1,
                    raw_answer=answer, score=score, latency_ms=latency_ms, answered_at=now,
                    parameter_version_id=facts.version_id))
    db.flush()
    observability.answer_recorded(db)
    repo.save_engine_state(db, row, new_state.to_dict(), row.state_version)
    if new_state.finished:
        _finalize(db, row, live, new_state, "completed")
    return _view(row, live, new_state)


@dataclass(frozen=True)
class InvitationOverview:
    """What the welcome page tells a candidate before the test starts."""

    assessment: str
    skills: tuple[str, ...]
    max_items: int
    time_limit_minutes: int | None
    expires_at: dt.datetime


def invitation_overview(invitation_token: str) -> InvitationOverview:
    with unit_of_work() as db:
        invitation = repo.find_invitation(db, invitation_token)
        if invitation is None:
            raise InvitationNotFound("this invitation link is not valid")
        if invitation.status in ("revoked", "expired") or \
                as_utc(invitation.expires_at) <= utcnow():
            raise InvitationUnavailable("this invitation is no longer valid")
        assessment = invitation.assessment
        blueprint = Blueprint.from_dict(assessment.blueprint)
        slugs = [s.skill for s in blueprint.skills]
        names = dict(db.execute(select(Skill.slug, Skill.name)
                                .where(Skill.bank_id == assessment.bank_id)).all())
        if not slugs:
            slugs = sorted(names)
        return InvitationOverview(assessment.name, tuple(names.get(s, s) for s in slugs),
                                  blueprint.max_items, assessment.time_limit_minutes,
                                  invitation.expires_at)
