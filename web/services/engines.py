"""Live assessments: the CAT engine of an assessment plus the facts of its items, cached per
process and rebuilt whenever the bank changes.

Building an engine loads the current bank and precomputes its grid tables, and answering needs
each item's content, key and current parameter version; all of it is cached per process, keyed
by the assessment's blueprint and a fingerprint of the bank (newest parameter version, newest
item change, number of items). The cache is derived data: a fresh worker rebuilds the same
thing from the database, so no session state lives in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from engine import Blueprint, CatEngine, CatState, SkillEstimate, make_engine
from irt.composite import composite_estimate
from item_bank.models import (
    Assessment,
    Invitation,
    Item,
    ItemMedia,
    ItemParameterVersion,
    utcnow,
)
from item_bank.pool import load_item_pool
from web.services.feasibility import composite_weights

log = logging.getLogger(__name__)

CACHE_SIZE = 32
#: How long a worker trusts the bank fingerprint it read last (seconds).
FINGERPRINT_TTL_S = 1.0
_cache: OrderedDict[tuple, LiveAssessment] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class ItemFacts:
    """What the candidate flow needs of an item besides its parameters (`item_bank.scoring`
    reads ``response_type``, ``key``, ``correct``, ``scoring`` and ``option_ids``)."""

    pk: int
    stem: str
    options: tuple[tuple[str, str], ...]
    key: str
    version_id: int | None
    response_type: str = "single"
    correct: tuple[str, ...] = ()
    scoring: str = "partial"
    #: (file name, alt text) of the images the stem shows.
    media: tuple[tuple[str, str], ...] = ()

    @property
    def option_ids(self) -> tuple[str, ...]:
        return tuple(o for o, _ in self.options)


@dataclass(frozen=True, eq=False)
class LiveAssessment:
    engine: CatEngine
    items: Mapping[str, ItemFacts]


def blueprint_of(assessment: Assessment) -> Blueprint:
    return Blueprint.from_dict(assessment.blueprint)


def bank_fingerprint(db: Session) -> tuple:
    """Changes whenever parameters are published or item content/status changes (one query)."""
    versions = select(func.max(ItemParameterVersion.id)).scalar_subquery()
    row = db.execute(select(versions, func.max(Item.updated_at), func.count(Item.id))).one()
    return row[0], str(row[1]), row[2]


def build_engine(db: Session, blueprint: Blueprint, bank_id: int | None = None) -> CatEngine:
    """The engine of the blueprint (`engine.make_engine`: its scorer, selector — shadow tests
    included —, exposure control, balancer and stopping rules) over the current items of
    ``bank_id`` (None: the database's only bank)."""
    skills = [s.skill for s in blueprint.skills] or None
    return make_engine(load_item_pool(db, skills, bank_id=bank_id), blueprint)


def _item_facts(db: Session, item_ids: tuple[str, ...], bank_id: int) -> dict[str, ItemFacts]:
    versions = dict(db.execute(select(ItemParameterVersion.item_id, ItemParameterVersion.id)
                               .join(Item, ItemParameterVersion.item_id == Item.id)
                               .where(Item.bank_id == bank_id,
                                      ItemParameterVersion.is_current.is_(True))).all())
    media: dict[int, list[tuple[str, str]]] = {}
    for item_pk, name, alt in db.execute(
            select(ItemMedia.item_id, ItemMedia.name, ItemMedia.alt)
            .join(Item, ItemMedia.item_id == Item.id).where(Item.bank_id == bank_id)
            .order_by(ItemMedia.id)):
        media.setdefault(item_pk, []).append((name, alt))
    facts = {}
    for item in db.scalars(select(Item).where(Item.bank_id == bank_id,
                                              Item.external_id.in_(item_ids))):
        facts[item.external_id] = ItemFacts(
            item.id, item.stem, tuple((str(o["id"]), str(o["text"])) for o in item.options),
            str(item.key), versions.get(item.id), item.response_type or "single",
            tuple(str(c) for c in item.correct or ()), item.scoring or "partial",
            tuple(media.get(item.id, ())))
    return facts


_fingerprints: dict[str, tuple[float, tuple]] = {}


def recent_fingerprint(db: Session) -> tuple:
    """`bank_fingerprint` of this database, re-read at most every `FINGERPRINT_TTL_S` seconds
    per process.

    A publish or a status change therefore reaches every worker within that time; answers in
    between are scored, and their parameter versions recorded, with the bank they were served
    from, so nothing is inconsistent, only up to a second late."""
    where = _database_key(db)
    now = time.monotonic()
    taken, value = _fingerprints.get(where, (-FINGERPRINT_TTL_S - 1.0, ()))
    if now - taken > FINGERPRINT_TTL_S:
        value = bank_fingerprint(db)
        _fingerprints[where] = (now, value)
    return value


_database_keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _database_key(db: Session) -> str:
    bind = db.get_bind()
    key = _database_keys.get(bind)
    if key is None:
        # .engine: a session may be bound to a Connection (which has no .url) as well as to an
        # Engine (whose .engine is itself)
        key = _database_keys[bind] = bind.engine.url.render_as_string(hide_password=True)
    return key


_banks_of_assessments: dict[tuple[str, int], int] = {}


def bank_of_assessment(db: Session, assessment_id: int) -> int:
    """The bank an assessment draws from (fixed at creation, so cached per process)."""
    key = (_database_key(db), assessment_id)
    bank_id = _banks_of_assessments.get(key)
    if bank_id is None:
        bank_id = db.scalar(select(Assessment.bank_id).where(Assessment.id == assessment_id))
        if bank_id is None:
            raise LookupError(f"no assessment {assessment_id}")
        _banks_of_assessments[key] = bank_id
    return bank_id


def live_assessment(db: Session, assessment_id: int, blueprint: Mapping,
                    key_of_blueprint: str | None = None) -> LiveAssessment:
    """The engine and item facts for a blueprint (a session keeps its own copy of it), on the
    items of the assessment's bank (``key_of_blueprint``: its `blueprint_key`, if known)."""
    bank_id = bank_of_assessment(db, assessment_id)
    if key_of_blueprint is None:
        key_of_blueprint = blueprint_key(blueprint)
    key = (_database_key(db), assessment_id, bank_id, key_of_blueprint, recent_fingerprint(db))
    with _lock:
        live = _cache.get(key)
        if live is not None:
            _cache.move_to_end(key)
            return live
    engine = build_engine(db, Blueprint.from_dict(blueprint), bank_id)
    live = LiveAssessment(engine, _item_facts(db, engine.pool.bank.item_ids, bank_id))
    with _lock:
        _cache[key] = live
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return live


#: `warm_up`: at most this many assessments, within this many seconds (a gunicorn worker
#: starts serving only after it, and its boot must stay far below gunicorn's timeout).
WARM_UP_LIMIT = 20
WARM_UP_BUDGET_S = 5.0


@dataclass(frozen=True)
class WarmUp:
    """What `warm_up` built: engines ready, assessments left to their first candidate (over the
    budget or failed), and the time it took."""

    assessments: int
    left: int
    seconds: float


def warm_up(db: Session, budget_s: float = WARM_UP_BUDGET_S, limit: int = WARM_UP_LIMIT,
            now: dt.datetime | None = None) -> WarmUp:
    """Build the engines of the assessments candidates can start now (an unexpired pending
    invitation; the most recently invited first) in this process's cache, so that a freshly
    started worker's first candidates do not wait for it: a cold build reads the bank and
    compiles the engine (about 0.25 s for the 320-item demo, against 7–10 ms for a start
    when built), and when a whole group starts at once every worker's first request pays it
    while the others queue. Runs before the worker accepts requests (``proficio serve``)."""
    t0 = time.perf_counter()
    now = now or utcnow()
    recent = (select(Invitation.assessment_id, func.max(Invitation.id).label("last"))
              .where(Invitation.status == "pending", Invitation.expires_at > now)
              .group_by(Invitation.assessment_id).subquery())
    rows = db.execute(select(Assessment.id, Assessment.blueprint)
                      .join(recent, recent.c.assessment_id == Assessment.id)
                      .order_by(recent.c.last.desc()).limit(limit)).all()
    built = left = 0
    for assessment_id, blueprint in rows:
        if time.perf_counter() - t0 > budget_s:
            left += 1
            continue
        try:
            live_assessment(db, assessment_id, blueprint)
            built += 1
        except Exception as exc:  # the first candidate then gets the same error, as before
            log.warning("warm-up: the engine of assessment %s was not built: %s",
                        assessment_id, exc)
            left += 1
    return WarmUp(built, left, time.perf_counter() - t0)


#: Session states kept per process after their answer committed, keyed by database, session
#: and state version (`CandidateSession.state_version`, bumped by every save): the next answer
#: to the session served by this worker reuses the engine's working arrays instead of reading
#: the stored events and rebuilding them. Derived data: a miss rebuilds the same state from
#: the database.
STATE_CACHE_SIZE = 4096
_states: OrderedDict[tuple, CatState] = OrderedDict()


@dataclass(frozen=True)
class KeptSession:
    """What a worker keeps of a session it saved: the version and start time of the row (its
    identity: a rebuilt database may reuse the id and version, not the start to the
    microsecond), the state saved as that version and the session's blueprint (fixed when it
    started) with its cache key."""

    version: int
    started_at: object
    state: CatState
    blueprint: Mapping
    blueprint_key: str


_kept: OrderedDict[tuple, KeptSession] = OrderedDict()


def kept_session(db: Session, session_id: int) -> KeptSession | None:
    """The state this worker saved last for the session (None: none kept). The caller reads
    the stored state only if the row's version and start time are no longer these
    (`web.services.candidate`)."""
    with _lock:
        return _kept.get((_database_key(db), session_id))


def session_state(db: Session, session_id: int, version: int,
                  stored: Mapping) -> CatState:
    """The engine state of a session row (``stored`` is its ``engine_state``): the state this
    worker saved at this version when it still matches the row, else parsed from ``stored``."""
    key = (_database_key(db), session_id, version)
    with _lock:
        state = _states.get(key)
    # a rebuilt database may reuse (id, version): check the stored value's identity too
    if (state is not None and stored.get("seed") == state.seed
            and len(stored.get("events", ())) == len(state.events)
            and stored.get("pending") == state.pending
            and stored.get("stop_reason") == state.stop_reason):
        return state
    return CatState.from_dict(stored)


def blueprint_key(blueprint: Mapping) -> str:
    return json.dumps(blueprint, sort_keys=True)


def remember_state(db: Session, session_id: int, version: int, state: CatState,
                   started_at: object = None, blueprint: Mapping | None = None,
                   key: str | None = None) -> None:
    """Keep ``state`` (saved as ``version`` of the session) once ``db`` commits; with the
    row's ``started_at`` and ``blueprint`` the next answer need not read the stored state."""
    where = _database_key(db)
    kept = None
    if started_at is not None and blueprint is not None and not state.finished:
        kept = KeptSession(version, started_at, state, blueprint,
                           key if key is not None else blueprint_key(blueprint))

    def keep(_session: Session) -> None:
        with _lock:
            _states[(where, session_id, version)] = state
            _states.move_to_end((where, session_id, version))
            while len(_states) > STATE_CACHE_SIZE:
                _states.popitem(last=False)
            if kept is not None:
                _kept[(where, session_id)] = kept
                _kept.move_to_end((where, session_id))
                while len(_kept) > STATE_CACHE_SIZE:
                    _kept.popitem(last=False)
            else:
                _kept.pop((where, session_id), None)
    event.listen(db, "after_commit", keep, once=True)


@dataclass(frozen=True)
class OverallEstimate:
    """The composite θ of a session's skills, its SE and the (normalised) weights used."""

    theta: float
    se: float
    weights: dict[str, float]


def overall_estimate(engine: CatEngine, state: CatState,
                     estimates: Mapping[str, SkillEstimate]) -> OverallEstimate | None:
    """The overall score of a finished session over the skills that received answers, or None
    when none did: ``wᵀθ̂`` with SE ``√(wᵀ C w)`` from the engine's posterior covariance C
    (the Laplace covariance under correlated-skill MAP scoring; diagonal when skills are
    scored separately)."""
    names = list(engine.skill_names)
    skills = [s for s in names if s in estimates and estimates[s].n_items > 0]
    if not skills:
        return None
    w = composite_weights(engine.blueprint, skills)
    weights = dict(zip(skills, (float(x) for x in w), strict=True))
    pos = [names.index(s) for s in skills]
    cov = np.asarray(engine.work(state).cov[0])[np.ix_(pos, pos)]
    theta, se = composite_estimate([estimates[s].theta for s in skills], cov,
                                   [weights[s] for s in skills])
    return OverallEstimate(theta, se, weights)
