"""The candidate's use cases: start or resume a session, show the pending item, record answers.

Each function owns its transaction and commits before returning, so an answer is durable
before the next question is shown. The engine state is the only session state; it lives in the
database (`CandidateSession.engine_state`), so any worker can serve the next request. The hot
path (one answer) is two statements on PostgreSQL: lock the session row (checking its token,
reading its accommodation in the same statement), then insert the response and update the state
in one statement (`repository.record_answer`); plus the bank fingerprint at most once a second.
A worker reuses the engine state it saved last for the session (`engines.kept_session`): the
locking statement then does not send the stored state or blueprint (a CASE on the locked row's
version and start time), the engine does not rebuild its working arrays from the stored events,
and the new state is saved as JSON text that encodes only what the answer added
(`CatState.to_json_after`). The statements are built once and run with bind parameters.

Safety rules enforced here:

* a double submit of the answer just recorded (double click, back button, retry) is
  acknowledged without recording it again;
* an answer to an item that is not the pending one is refused (`NotPendingError`);
* a finished or timed-out session cannot change (`SessionClosedError`);
* the deadline is checked by the server on every call; past it, the session is scored on what
  was answered and marked ``timed_out``.

Time limits and accommodations: a recruiter may grant a candidate extra time (a share of the
assessment's limit, added to the deadline when the session starts) and a break of up to N
minutes during which the clock stops (`start_break` / `end_break`; a break that outlasts its
allowance lets the clock run again). Both are stored in ``accommodations`` and reported with
the result. The countdown on the page is only a display: the server's deadline decides.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, case, null, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from engine import Blueprint, CatState
from engine.errors import EngineError
from item_bank import media as media_store
from item_bank import repository as repo
from item_bank.forensics_models import session_security
from item_bank.models import (
    Accommodation,
    Assessment,
    CandidateSession,
    Invitation,
    Item,
    Response,
    Skill,
    as_utc,
    utcnow,
)
from item_bank.scoring import AnswerError, canonical_answer, score_response
from item_bank.security import hash_token
from item_bank.stacks import assumed_stacks
from web import observability
from web.db import get_db, unit_of_work
from web.services import forensics, retakes, webhooks
from web.services.engines import (
    KeptSession,
    LiveAssessment,
    bank_of_assessment,
    blueprint_key,
    kept_session,
    live_assessment,
    overall_estimate,
    remember_state,
    session_state,
)
from web.services.feasibility import VARIED_OVERLAP, Feasibility


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


class TimeUpError(SessionClosedError):
    """An answer arrived after the deadline; the session has been scored and closed."""

    code = "time_up"


class BreakRefused(CandidateError):
    status, code = 409, "break_refused"


@dataclass(frozen=True)
class PendingItem:
    """What the candidate may see of an item: its id, stem, options, how it is answered and
    its images (never the key, the correct answers or the parameters)."""

    item_id: str
    stem: str
    options: tuple[tuple[str, str], ...]
    response_type: str = "single"
    #: (file name, alt text) of the stem's images, served by ``candidate.media``.
    media: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SessionView:
    session_id: int
    status: str
    pending: PendingItem | None
    answered: int
    max_items: int
    deadline: dt.datetime | None
    token: str | None = None
    #: The clock is stopped (a granted break is being taken); `deadline` is then when the
    #: time would run out if the break ended now.
    on_break: bool = False
    #: Break time still available, in seconds (0 when none was granted or it is used up).
    break_left_seconds: int = 0

    @property
    def position(self) -> int:
        return self.answered + 1

    def remaining_seconds(self, now: dt.datetime | None = None) -> int | None:
        if self.deadline is None:
            return None
        left = (as_utc(self.deadline) - (now or utcnow())).total_seconds()
        return max(0, int(left))


def _accommodation(db: Session, row: CandidateSession) -> Accommodation | None:
    """The granted accommodation of a timed session (untimed sessions skip the query)."""
    if row.deadline is None:
        return None
    return db.scalar(select(Accommodation)
                     .where(Accommodation.invitation_id == row.invitation_id))


def _break_left(acc: Accommodation | None) -> float:
    if acc is None:
        return 0.0
    return max(0.0, acc.break_minutes * 60.0 - acc.break_used_seconds)


def _effective_deadline(row: CandidateSession, acc: Accommodation | None,
                        now: dt.datetime) -> dt.datetime | None:
    """The deadline with the running break (if any) counted, up to its allowance."""
    if row.deadline is None:
        return None
    deadline = as_utc(row.deadline)
    if acc is not None and acc.break_started_at is not None:
        paused = (now - as_utc(acc.break_started_at)).total_seconds()
        deadline += dt.timedelta(seconds=min(max(paused, 0.0), _break_left(acc)))
    return deadline


def _close_break(row: CandidateSession, acc: Accommodation | None, now: dt.datetime) -> None:
    """End a running break: the paused time (up to the allowance) moves the deadline."""
    if acc is None or acc.break_started_at is None or row.deadline is None:
        return
    used = min(max((now - as_utc(acc.break_started_at)).total_seconds(), 0.0), _break_left(acc))
    row.deadline = as_utc(row.deadline) + dt.timedelta(seconds=used)
    acc.break_used_seconds += round(used)
    acc.break_started_at = None



def _view(row: CandidateSession, live: LiveAssessment, state: CatState,
          token: str | None = None, acc: Accommodation | None = None,
          now: dt.datetime | None = None) -> SessionView:
    pending = None
    if row.status == "in_progress" and state.pending is not None:
        facts = live.items[state.pending]
        pending = PendingItem(state.pending, facts.stem, facts.options, facts.response_type,
                              facts.media)
    now = now or utcnow()
    left = _break_left(acc)
    on_break = False
    if acc is not None and acc.break_started_at is not None and row.status == "in_progress":
        on_break = True
        left -= (now - as_utc(acc.break_started_at)).total_seconds()
    return SessionView(row.id, row.status, pending, len(state.events),
                       live.engine.blueprint.max_items, _effective_deadline(row, acc, now),
                       token, on_break, max(0, int(left)))


def _finalize(db: Session, row: CandidateSession, live: LiveAssessment, state: CatState,
              status: str) -> None:
    """Store per-skill results from the engine and close the session."""
    stop = state.stop_reason or status
    blueprint = live.engine.blueprint
    rule = None if blueprint.classification is None else blueprint.classification.method
    # the settings the session started under (a change since applies to later sessions)
    # (the assessment's settings are read only for a session started before copies were kept)
    if session_security(row.security, row.assessment.security if row.security is None
                        else None)["effort_moderated"]:
        # effort-moderated scoring: rapid guesses are left out of the score (the engine state
        # keeps every answer; the replay leaves out the same positions)
        rapid = tuple(p for p in forensics.rapid_guess_positions(
            db, row.id, bank_of_assessment(db, row.assessment_id))
            if p <= len(state.events) and state.events[p - 1].scored)  # pretest: unscored
        if rapid:
            row.unscored_positions = list(rapid)
            state = live.engine.rescore(state, rapid)
    estimates = live.engine.estimates(state)
    outcomes = []
    for skill, est in estimates.items():
        decided = est.decided and rule is not None and est.decision is not None
        outcomes.append(repo.SkillOutcome(skill, est.theta, est.se, est.n_items, stop,
                                          est.decision if decided else None,
                                          rule if decided else None))
    repo.record_skill_results(db, row.id, outcomes)
    overall = overall_estimate(live.engine, state, estimates)
    if overall is not None:
        repo.record_overall_result(db, row.id, overall.theta, overall.se, overall.weights)
    repo.finish_session(db, row, status)
    observability.session_finished(db, status)
    webhooks.session_event(db, row, f"session.{status}")
    # marks the bank's monitor pending (one row) and queues its job after commit; the monitor
    # itself never runs here
    forensics.request_after_session(db, bank_of_assessment(db, row.assessment_id))


@dataclass
class _Read:
    """What the locking statement read besides the row: the state this worker kept for the
    session when the row still holds it (then the stored state and blueprint were not read),
    and the session's blueprint with its cache key once `_load` has them."""

    kept: KeptSession | None
    blueprint: dict | None = None
    key: str | None = None


def _load(db: Session, row: CandidateSession, read: _Read | None = None
          ) -> tuple[LiveAssessment, CatState]:
    kept = None if read is None else read.kept
    if kept is not None:
        if read is not None:
            read.blueprint, read.key = dict(kept.blueprint), kept.blueprint_key
        return (live_assessment(db, row.assessment_id, kept.blueprint, kept.blueprint_key),
                kept.state)
    key = blueprint_key(row.blueprint)
    if read is not None:
        read.blueprint, read.key = dict(row.blueprint), key
    if row.engine_state is None:  # every session starts with one (`repo.start_session`)
        raise RuntimeError(f"session {row.id} has no stored engine state")
    return (live_assessment(db, row.assessment_id, row.blueprint, key),
            session_state(db, row.id, row.state_version, row.engine_state))


def _check_deadline(db: Session, row: CandidateSession, live: LiveAssessment, state: CatState,
                    now: dt.datetime, acc: Accommodation | None = None) -> bool:
    """Close a running session whose deadline (break time counted) has passed; True when it
    did."""
    if row.status != "in_progress" or row.deadline is None or now < as_utc(row.deadline):
        return False
    acc = acc if acc is not None else _accommodation(db, row)
    deadline = _effective_deadline(row, acc, now)
    if deadline is not None and now >= deadline:
        _close_break(row, acc, now)
        _finalize(db, row, live, state, "timed_out")
        return True
    return False


def _lock(db: Session, session_id: int, token: str | None = None) -> CandidateSession:
    """The session row locked for update (PostgreSQL; SQLite write transactions are exclusive),
    optionally only if ``token`` is its bearer token."""
    return _lock_with_accommodation(db, session_id, token)[0]


_LOCK_STATEMENTS: dict[tuple[bool, bool], Select] = {}


def _lock_statement(kept: bool, token: bool) -> Select:
    """The statement of `_lock_with_accommodation` (built once: the hot path runs it on every
    answer), with parameters ``session_id``, ``token_hash`` (``token``) and ``kept_version``,
    ``kept_started_at`` (``kept``)."""
    stmt = _LOCK_STATEMENTS.get((kept, token))
    if stmt is not None:
        return stmt
    cs = CandidateSession
    if not kept:
        stmt = select(cs, Accommodation)
    else:
        same = ((cs.state_version == bindparam("kept_version"))
                & (cs.started_at == bindparam("kept_started_at", type_=cs.started_at.type)))
        stmt = (select(cs, Accommodation, case((same, 1), else_=0),
                       case((same, null()), else_=cs.engine_state),
                       case((same, null()), else_=cs.blueprint))
                .options(defer(cs.engine_state), defer(cs.blueprint)))
    stmt = (stmt.outerjoin(Accommodation, Accommodation.invitation_id == cs.invitation_id)
            .where(cs.id == bindparam("session_id")))
    if token:
        stmt = stmt.where(cs.token_hash == bindparam("token_hash"))
    stmt = stmt.with_for_update(of=cs)
    _LOCK_STATEMENTS[(kept, token)] = stmt
    return stmt


def _lock_with_accommodation(db: Session, session_id: int, token: str | None = None
                             ) -> tuple[CandidateSession, Accommodation | None, _Read]:
    """`_lock` and `_accommodation` in one statement (one round trip): the session row locked
    for update (only the session row: ``FOR UPDATE OF``), its granted accommodation read.

    When this worker kept the session's state (`engines.kept_session`) and the locked row still
    has that version and start time, the stored state and blueprint are not sent (the
    statement's CASE compares on the locked row itself) and `_load` uses the kept ones."""
    kept = kept_session(db, session_id)
    params: dict[str, object] = {"session_id": session_id}
    if token is not None:
        params["token_hash"] = hash_token(token)
    if kept is not None:
        params["kept_version"], params["kept_started_at"] = kept.version, kept.started_at
    found = db.execute(_lock_statement(kept is not None, token is not None), params).first()
    if found is None:
        raise SessionNotFound("no such session for this token")
    row, acc = found[0], found[1]
    read = _Read(None)
    if kept is not None:
        if found[2]:
            read.kept = kept
        else:  # not the kept state: what the row holds (the columns were deferred)
            set_committed_value(row, "engine_state", found[3])
            set_committed_value(row, "blueprint", found[4])
    return row, (acc if row.deadline is not None else None), read


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
                     .where(Invitation.token_hash == hash_token(token or "-"))
                     # what a start reads next, in the same round trip
                     .options(joinedload(Invitation.assessment),
                              joinedload(Invitation.candidate),
                              joinedload(Invitation.accommodation))).first()
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
        row, acc, read = _lock_with_accommodation(db, row_id)
        live, state = _load(db, row, read)
        _check_deadline(db, row, live, state, now, acc)
        token = None
        if rotate_token and row.status == "in_progress":
            token = secrets.token_urlsafe(32)
            row.token_hash = hash_token(token)
        return _view(row, live, state, token, acc, now)


def _start(db: Session, invitation: Invitation, now: dt.datetime) -> SessionView:
    if invitation.status == "revoked":
        raise InvitationUnavailable("this invitation has been withdrawn")
    if invitation.status != "pending":
        raise InvitationUnavailable(f"this invitation is {invitation.status}")
    if as_utc(invitation.expires_at) <= now:
        invitation.status = "expired"
        raise InvitationUnavailable("this invitation has expired")
    assessment = invitation.assessment
    blueprint = dict(assessment.blueprint)
    live = live_assessment(db, assessment.id, blueprint)
    # a retake (same e-mail within the organisation, inside the window): no item seen before
    # where the bank allows it; the session keeps the exclusions in its copy of the blueprint
    excluded = retakes.exclusions(live.engine, retakes.seen_items(db, invitation, now))
    if excluded:
        blueprint["exclude_items"] = list(excluded)
        live = live_assessment(db, assessment.id, blueprint)
    with observability.ITEM_SELECTION.time():
        state = live.engine.start(seed=secrets.randbits(63))
    deadline = None
    if assessment.time_limit_minutes:
        acc = invitation.accommodation
        extra = acc.extra_time_percent if acc is not None else 0
        deadline = now + dt.timedelta(minutes=assessment.time_limit_minutes * (1 + extra / 100))
    row, token = repo.start_session(db, invitation, engine_state=state.to_dict(),
                                    deadline=deadline, blueprint=blueprint)
    remember_state(db, row.id, row.state_version, state, row.started_at, blueprint)
    observability.session_started(db)
    if state.finished:  # an empty pool: nothing to ask
        _finalize(db, row, live, state, "completed")
    return _view(row, live, state, token)


def session_status(session_id: int, token: str | None = None) -> SessionView:
    """Status and pending item (checking ``token`` when given); closes a session past its
    deadline."""
    now = utcnow()
    with unit_of_work() as db:
        row, acc, read = _lock_with_accommodation(db, session_id, token)
        live, state = _load(db, row, read)
        _check_deadline(db, row, live, state, now, acc)
        return _view(row, live, state, None, acc, now)


def close_overdue_sessions(limit: int = 200) -> int:
    """Score and close running sessions whose deadline has passed although the candidate made
    no further request (closed tab), so that results and ``session.timed_out`` webhooks do not
    wait for a visit; run by the scheduler. Returns how many were closed."""
    now = utcnow()
    db = get_db()
    ids = list(db.scalars(select(CandidateSession.id)
                          .where(CandidateSession.status == "in_progress",
                                 CandidateSession.deadline.is_not(None),
                                 CandidateSession.deadline <= now)
                          .order_by(CandidateSession.deadline).limit(limit)))
    closed = 0
    for session_id in ids:  # each in its own transaction, through the same deadline check
        if session_status(session_id).status == "timed_out":
            closed += 1
    return closed


def start_break(session_id: int) -> SessionView:
    """Stop the clock for a granted break (refused without break time left)."""
    now = utcnow()
    with unit_of_work() as db:
        row, acc, read = _lock_with_accommodation(db, session_id)
        live, state = _load(db, row, read)
        if not _check_deadline(db, row, live, state, now, acc) and row.status == "in_progress":
            if acc is None or _break_left(acc) <= 0:
                raise BreakRefused("no break time is left for this assessment")
            if acc.break_started_at is None:
                acc.break_started_at = now
        return _view(row, live, state, None, acc, now)


def end_break(session_id: int) -> SessionView:
    """Start the clock again (the time paused counts against the break allowance)."""
    now = utcnow()
    with unit_of_work() as db:
        row, acc, read = _lock_with_accommodation(db, session_id)
        live, state = _load(db, row, read)
        if not _check_deadline(db, row, live, state, now, acc):
            _close_break(row, acc, now)
        return _view(row, live, state, None, acc, now)


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


def submit_answer(session_id: int, item_id: str, answer: str | Sequence[str], *,
                  token: str | None = None, latency_ms: int | None = None) -> SessionView:
    """Record the answer to the pending item and serve the next one (committed on return).

    ``answer`` is an option id, a list of option ids (multiple response: the chosen ones;
    ordering: all of them in order) or the typed text/number (`item_bank.scoring`). With
    ``token`` the session must be the one that bearer token opens.
    """
    now = utcnow()
    try:
        with unit_of_work() as db:
            row, acc, read = _lock_with_accommodation(db, session_id, token)
            live, state = _load(db, row, read)
            late = _check_deadline(db, row, live, state, now, acc)
            if not late:
                _close_break(row, acc, now)  # answering (e.g. from a stale tab) ends a break
                return _record(db, row, read, live, state, item_id, answer, latency_ms, now)
        raise TimeUpError("the time limit has passed; the answers given before it "
                          "were scored")
    except IntegrityError:
        # A concurrent duplicate of this very answer won the race: report the stored outcome.
        with unit_of_work() as db:
            stored = _stored_answer(db, session_id, item_id)
            if stored is not None:
                row, _acc, read = _lock_with_accommodation(db, session_id, token)
                live, state = _load(db, row, read)
                if stored == _stored_form(live, item_id, answer):
                    return _view(row, live, state)
        raise NotPendingError("this answer was not recorded; the question changed") from None


def pending_media(invitation_token: str, item_id: str, name: str) -> tuple[str, bytes]:
    """``(content type, bytes)`` of an image of the question the session shows now: only the
    pending item's images are served (`SessionNotFound` otherwise, including another bank's
    or another session's items)."""
    with unit_of_work() as db:
        invitation, row_id = _find_invitation(db, invitation_token)
        if invitation is None or row_id is None:
            raise SessionNotFound("no such image")
        return _pending_media(db, db.get(CandidateSession, row_id), item_id, name)


def session_media(session_id: int, token: str, item_id: str, name: str) -> tuple[str, bytes]:
    """`pending_media` for the API: the session its bearer ``token`` opens."""
    with unit_of_work() as db:
        row = db.scalar(select(CandidateSession).where(
            CandidateSession.id == session_id, CandidateSession.token_hash == hash_token(token)))
        return _pending_media(db, row, item_id, name)


def _pending_media(db: Session, row: CandidateSession | None, item_id: str, name: str
                   ) -> tuple[str, bytes]:
    if row is None or row.status != "in_progress" or row.engine_state is None:
        raise SessionNotFound("no such image")
    state = session_state(db, row.id, row.state_version, row.engine_state)
    if state.pending != item_id:
        raise SessionNotFound("no such image")
    found = media_store.find(db, bank_of_assessment(db, row.assessment_id), item_id, name)
    if found is None:
        raise SessionNotFound("no such image")
    return found.content_type, media_store.read(found)


def _stored_form(live: LiveAssessment, item_id: str, answer: str | Sequence[str]
                 ) -> str | None:
    """How ``answer`` to ``item_id`` is stored (None: it does not fit the item)."""
    facts = live.items.get(item_id)
    if facts is None:
        return None
    try:
        return canonical_answer(facts, answer)
    except AnswerError:
        return None


def _stored_answer(db: Session, session_id: int, item_id: str) -> str | None:
    return db.scalar(select(Response.raw_answer).join(Item)
                     .where(Response.session_id == session_id, Item.external_id == item_id))


def _record(db: Session, row: CandidateSession, read: _Read, live: LiveAssessment,
            state: CatState, item_id: str, answer: str | Sequence[str], latency_ms: int | None,
            now: dt.datetime) -> SessionView:
    answered = any(e.item_id == item_id for e in state.events)
    if answered:
        stored = _stored_answer(db, row.id, item_id)
        if stored is not None and stored == _stored_form(live, item_id, answer):
            return _view(row, live, state)  # a repeat of an acknowledged answer
    if row.status != "in_progress":
        raise SessionClosedError(f"this session is {row.status.replace('_', ' ')}; it cannot "
                                 "be changed")
    if item_id != state.pending:
        raise NotPendingError("that is not the current question; please answer the question "
                              "shown now")
    facts = live.items[item_id]
    try:
        answer = canonical_answer(facts, answer)
        score = score_response(facts, answer)
    except AnswerError as exc:
        raise InvalidAnswerError(str(exc)) from None
    if latency_ms is None and row.item_served_at is not None:
        # measured by the server: from when the item was served to now (a break taken or a
        # closed tab while the item was shown counts too)
        latency_ms = max(0, round((now - as_utc(row.item_served_at)).total_seconds() * 1000))
    try:
        with observability.ITEM_SELECTION.time():
            new_state = live.engine.record(state, item_id, score)
    except EngineError as exc:  # pragma: no cover - guarded above
        raise NotPendingError(str(exc)) from None
    db.flush()  # pending changes (a break closed by this answer) before the statements below
    # the stored JSON, encoding only the new event (and trajectory point) of this answer
    version = repo.record_answer(db, row, new_state.to_json_after(state), row.state_version,
                                 item_id=facts.pk, position=len(state.events) + 1,
                                 raw_answer=answer, score=score, latency_ms=latency_ms,
                                 answered_at=now, parameter_version_id=facts.version_id)
    observability.answer_recorded(db)
    remember_state(db, row.id, version, new_state, row.started_at, read.blueprint, read.key)
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
    #: Minutes the candidate has in all (the limit plus granted extra time), None: no limit.
    minutes_allowed: int | None = None
    break_minutes: int = 0
    #: Names of the technology stacks that some of the assessment's questions assume
    #: (`item_bank.stacks.assumed_stacks`); empty when every question is stack-neutral.
    stacks: tuple[str, ...] = ()
    #: What the design's feasibility check measured (`web.services.feasibility`), None when
    #: the assessment has not been checked: the usual length range (10th–90th percentile)
    #: when tests do stop early, and whether exposure control keeps overlap low.
    length_range: tuple[int, int] | None = None
    varied: bool = False


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
        acc = invitation.accommodation
        limit = assessment.time_limit_minutes
        allowed = None
        if limit:
            allowed = round(limit * (1 + (acc.extra_time_percent if acc else 0) / 100))
        length_range, varied = None, False
        if assessment.feasibility:
            f = Feasibility.from_dict(assessment.feasibility)
            if f.share_early >= 0.1 and round(f.length_p10) < f.max_items:
                length_range = (round(f.length_p10), round(f.length_p90))
            varied = f.overlap <= VARIED_OVERLAP
        return InvitationOverview(assessment.name, tuple(names.get(s, s) for s in slugs),
                                  blueprint.max_items, limit, invitation.expires_at,
                                  allowed, acc.break_minutes if acc and limit else 0,
                                  assumed_stacks(db, slugs, blueprint.exclude_tags),
                                  length_range, varied)


def invitation_language(invitation_token: str) -> str | None:
    """The language the invitation's assessment is set to (None: the browser chooses)."""
    db = get_db()
    return db.scalar(select(Assessment.language).join(
        Invitation, Invitation.assessment_id == Assessment.id)
        .where(Invitation.token_hash == hash_token(invitation_token or "-")))
