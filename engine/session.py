"""A CAT session: an immutable, JSON-serializable state and the engine that advances it.

`CatEngine` holds the item pool and the blueprint (and the tables compiled from them once);
`CatState` holds only plain values: the served items with their audit records, the responses,
per skill the trajectory of EAP θ and posterior SD after every response, classification
decisions, the pending item and the stop reason. Item parameters are never embedded: items are
referred to by id, and the pool is passed in.

Scoring during the test is EAP on a fixed grid (Bock & Mislevy 1982), kept incrementally: the
log posterior per skill is the log prior plus one ``log P_i(x | θ_q)`` column per response, so a
step costs one vector add and one normalization, and all-correct / all-wrong patterns are finite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

import irt
from engine._rng import SALT_PRETEST, uniform
from engine.blueprint import Blueprint, SkillSpec
from engine.errors import (
    AlreadyAnsweredError,
    ConfigurationError,
    EngineError,
    NotServedError,
    ResponseOutOfRangeError,
    SessionFinishedError,
    UnknownItemError,
)
from engine.pool import ItemPool, as_pool, compile_bank
from engine.strategies import KLInfo, MaxInfo, NoExposureControl, SelectionContext, Selector

#: Stop reasons recorded in `CatState.stop_reason`.
STOP_REASONS = ("se_target", "classified", "max_items", "bank_exhausted")
STATE_VERSION = 1
_MFI = MaxInfo()


def effective_selector(selector: Selector, n_given: int) -> Selector:
    """The selector actually applied at ``n_given`` scored items (KL hands over to MFI)."""
    if isinstance(selector, KLInfo) and n_given >= selector.switch_after:
        return _MFI
    return selector


def eap_on_grid(log_post: NDArray[np.float64], nodes: NDArray[np.float64]
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """EAP and posterior SD from unnormalized log posteriors ``(n, n_nodes)`` on ``nodes``.

    ``θ̂ = Σ_q θ_q w_q / Σ_q w_q``, ``SD² = Σ_q (θ_q − θ̂)² w_q / Σ_q w_q`` with
    ``w_q = exp(log p_q − max log p)`` (Bock & Mislevy 1982). Row-wise, so one session and a
    batch of sessions get bit-identical numbers.
    """
    w = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    total = w.sum(axis=1)
    theta = (w * nodes).sum(axis=1) / total
    dev = nodes - theta[:, None]
    var = (w * dev * dev).sum(axis=1) / total
    return theta, np.sqrt(var)


def _eap_1d(log_post: NDArray[np.float64], nodes: NDArray[np.float64]) -> tuple[float, float]:
    """`eap_on_grid` for one session: the same operations in the same order on a 1-D row
    (contiguous reductions use the same pairwise summation), so the numbers are identical."""
    w = np.exp(log_post - log_post.max())
    total = w.sum()
    theta = (w * nodes).sum() / total
    dev = nodes - theta
    return float(theta), float(np.sqrt((w * dev * dev).sum() / total))


# --------------------------------------------------------------------------- state values

@dataclass(frozen=True, slots=True)
class SelectionAudit:
    """Why an item was served: the rule, θ̂ at the time, the item's criterion value and its rank
    among ``n_candidates`` available items (1 = best; exposure control may pick a lower rank)."""

    rule: str
    exposure: str
    skill: str
    theta: float
    criterion: float
    rank: int
    n_candidates: int

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "exposure": self.exposure, "skill": self.skill,
                "theta": self.theta, "criterion": self.criterion, "rank": self.rank,
                "n_candidates": self.n_candidates}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SelectionAudit:
        return cls(str(d["rule"]), str(d["exposure"]), str(d["skill"]), float(d["theta"]),
                   float(d["criterion"]), int(d["rank"]), int(d["n_candidates"]))


@dataclass(frozen=True, slots=True)
class ItemEvent:
    """One answered item: ``scored`` is False for unscored pretest items."""

    item_id: str
    skill: str
    response: int
    scored: bool
    audit: SelectionAudit


@dataclass(frozen=True, slots=True)
class TrajectoryPoint:
    """EAP θ and posterior SD of a skill after one of its responses."""

    theta: float
    se: float


@dataclass(frozen=True, slots=True)
class SkillEstimate:
    """A skill's score: θ̂, its standard error, the number of scored items, the method, and the
    classification (``'pass'``/``'fail'``; ``decided`` False when the rule had not decided and
    the decision is θ̂ against the cut)."""

    skill: str
    theta: float
    se: float
    n_items: int
    method: str
    decision: str | None = None
    decided: bool = False


@dataclass(frozen=True, eq=False)
class CatState:
    """The state of one session. Build with `CatEngine.start`; advance with `CatEngine.record`.

    Every field is a plain value; `to_json` / `from_json` round-trip it exactly (the engine
    recomputes its working arrays from the events on first use).
    """

    seed: int
    events: tuple[ItemEvent, ...]
    pending: str | None
    pending_audit: SelectionAudit | None
    trajectory: Mapping[str, tuple[TrajectoryPoint, ...]]
    decisions: Mapping[str, str]
    stop_reason: str | None
    _memo: Any = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        """Number of scored items answered."""
        return sum(1 for e in self.events if e.scored)

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def audit(self) -> tuple[SelectionAudit, ...]:
        """The audit record of every served item, in order (the pending one last)."""
        out = tuple(e.audit for e in self.events)
        return out + ((self.pending_audit,) if self.pending_audit is not None else ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "events": [{"item_id": e.item_id, "skill": e.skill, "response": e.response,
                        "scored": e.scored, "audit": e.audit.to_dict()} for e in self.events],
            "pending": self.pending,
            "pending_audit": None if self.pending_audit is None
            else self.pending_audit.to_dict(),
            "trajectory": {s: [[p.theta, p.se] for p in pts]
                           for s, pts in self.trajectory.items()},
            "decisions": dict(self.decisions),
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CatState:
        try:
            if d.get("version") != STATE_VERSION:
                raise EngineError(f"session state: unsupported version {d.get('version')!r}")
            events = tuple(
                ItemEvent(str(e["item_id"]), str(e["skill"]), int(e["response"]),
                          bool(e["scored"]), SelectionAudit.from_dict(e["audit"]))
                for e in d["events"])
            stop = d["stop_reason"]
            if stop is not None and stop not in STOP_REASONS:
                raise EngineError(f"session state: unknown stop_reason {stop!r}")
            pa = d["pending_audit"]
            return cls(
                seed=int(d["seed"]), events=events,
                pending=None if d["pending"] is None else str(d["pending"]),
                pending_audit=None if pa is None else SelectionAudit.from_dict(pa),
                trajectory=MappingProxyType({
                    str(s): tuple(TrajectoryPoint(float(t), float(se)) for t, se in pts)
                    for s, pts in d["trajectory"].items()}),
                decisions=MappingProxyType({str(k): str(v) for k, v in d["decisions"].items()}),
                stop_reason=stop,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, EngineError):
                raise
            raise EngineError(f"session state: malformed field ({type(exc).__name__}: {exc})"
                              ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CatState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EngineError(f"session state JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EngineError("session state JSON must be an object")
        return cls.from_dict(data)


@dataclass(eq=False)
class _Memo:
    """Working arrays of a state (never serialized; rebuilt from the events when missing)."""

    log_post: dict[str, NDArray[np.float64]]
    given: NDArray[np.bool_]
    excluded: NDArray[np.bool_]
    counts: dict[str, int]
    theta: dict[str, float]
    se: dict[str, float]
    llr: dict[str, float]
    n_scored: int
    n_pretest: int


# --------------------------------------------------------------------------- the engine

class SessionEngine:
    """What every engine shares about states: the pending item, the stop reason, and the
    working arrays cached on a state (rebuilt by the engine's ``_replay`` from the events of a
    deserialized state, once per engine)."""

    def next_item(self, state: CatState) -> str | None:
        """The item served to this state (None once finished). Deterministic in the state."""
        return state.pending

    def finished(self, state: CatState) -> str | None:
        """The stop reason, or None while the session runs."""
        return state.stop_reason

    def _replay(self, state: CatState) -> Any:
        raise NotImplementedError

    def _memo(self, state: CatState) -> Any:
        cached = state._memo
        if cached is not None and cached[0] is self:
            return cached[1]
        memo = self._replay(state)
        object.__setattr__(state, "_memo", (self, memo))
        return memo


class CatEngine(SessionEngine):
    """Runs sessions of one blueprint over one item pool.

    Parameters
    ----------
    pool : an `ItemPool` (or a bare `irt.Bank`, all items operational).
    blueprint : the test configuration.

    Notes
    -----
    ``next_item``, ``record``, ``estimates`` and ``finished`` never mutate a state; ``record``
    returns a new one and leaves the old one valid, so a failed call changes nothing.
    """

    def __init__(self, pool: ItemPool | irt.Bank, blueprint: Blueprint | None = None) -> None:
        self.pool = as_pool(pool)
        self.blueprint = bp = blueprint if blueprint is not None else Blueprint()
        bank = self.pool.bank
        self.compiled = comp = compile_bank(bank, bp.grid)
        self.nodes = comp.nodes
        status = np.asarray(self.pool.status, dtype=object)
        operational = status == "operational"
        if bp.skills:
            specs = bp.skills
            for s in specs:
                if s.skill not in comp.skills:
                    raise ConfigurationError(f"blueprint skill {s.skill!r} has no items in the "
                                             f"pool")
        else:
            specs = tuple(SkillSpec(s) for s in comp.skill_names
                          if operational[comp.skills[s].idx].any())
            if not specs:
                raise ConfigurationError("the pool has no operational items")
        self.specs = specs
        self.skill_names = tuple(s.skill for s in specs)
        self.skill_max = {s.skill: min(s.max_items or bp.max_items, bp.max_items) for s in specs}
        self.skill_min = {s.skill: s.min_items for s in specs}
        wsum = sum(s.weight for s in specs)
        self.share = {s.skill: s.weight / wsum for s in specs}
        self.tables = {s: comp.skills[s] for s in self.skill_names}
        in_blueprint = np.isin(np.asarray(bank.skills, dtype=object),
                               np.asarray(self.skill_names, dtype=object))
        tagged = np.zeros(len(bank), dtype=bool)
        if bp.exclude_tags:
            bad = set(bp.exclude_tags)
            for iid, tags in self.pool.tags.items():
                if bad.intersection(tags):
                    tagged[self.pool.index(iid)] = True
        #: Items never selectable adaptively (not operational, other skills, excluded tags).
        self.base_excluded = ~operational | ~in_blueprint | tagged
        self.pretest_items = np.flatnonzero((status == "pretest") & in_blueprint & ~tagged)
        enemies = self.pool.enemies()
        self.enemies = {i: e for i, e in enumerate(enemies) if e.size}
        self.prior = {s: bp.start.prior(s) for s in self.skill_names}
        self.start_theta = {s: bp.start.start_theta(s) for s in self.skill_names}
        self.prior_log = {s: -0.5 * ((self.nodes - m) / sd) ** 2
                          for s, (m, sd) in self.prior.items()}
        self.exposure_prepared = bp.exposure.prepare(self.pool)
        self._plain = type(bp.exposure) is NoExposureControl
        # a skill whose items are consecutive in the bank is read through a view, not a gather
        self._cols: dict[str, slice | NDArray[np.int64]] = {}
        for s, tab in self.tables.items():
            idx = tab.idx
            contiguous = idx.size and idx[-1] - idx[0] + 1 == idx.size
            self._cols[s] = slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx
        self.n_categories = bank.n_categories
        self.skill_of_item = bank.skills
        self._llr: dict[str, NDArray[np.float64]] = {}
        self._cut: dict[str, float] = {}
        cls = bp.classification
        if cls is not None:
            for s in self.skill_names:
                cut = cls.cut_for(s)
                if cut is not None:
                    self._cut[s] = cut
                    self._llr[s] = comp.log_likelihood_ratio(cut + cls.delta, cut - cls.delta)
            self._z = float(norm.ppf(0.5 + cls.level / 2.0))

    # -- public API --------------------------------------------------------------------
    def start(self, seed: int | None = None) -> CatState:
        """A fresh session (``seed`` defaults to the blueprint's) with its first item served."""
        seed = self.blueprint.seed if seed is None else int(seed)
        if not 0 <= seed < 2**64:
            raise EngineError(f"seed must be in [0, 2**64), got {seed}")
        memo = _Memo(
            log_post=dict(self.prior_log), given=np.zeros(len(self.pool), dtype=bool),
            excluded=self.base_excluded.copy(), counts=dict.fromkeys(self.skill_names, 0),
            theta=dict(self.start_theta), se={s: p[1] for s, p in self.prior.items()},
            llr=dict.fromkeys(self._llr, 0.0), n_scored=0, n_pretest=0)
        return self._advance(seed, (), MappingProxyType({s: () for s in self.skill_names}),
                             MappingProxyType({}), memo, stop=None)

    def record(self, state: CatState, item_id: str, response: int) -> CatState:
        """Record the response to the served item and serve the next one.

        Raises
        ------
        SessionFinishedError, UnknownItemError, AlreadyAnsweredError, NotServedError,
        ResponseOutOfRangeError — and then ``state`` is unchanged (states are immutable).
        """
        if state.stop_reason is not None:
            raise SessionFinishedError(f"the session has finished ({state.stop_reason}); "
                                       f"no more responses are accepted")
        try:
            i = self.pool.index(item_id)
        except (KeyError, TypeError):
            raise UnknownItemError(f"unknown item {item_id!r}") from None
        memo = self._memo(state)
        if memo.given[i]:
            raise AlreadyAnsweredError(f"item {item_id!r} was already answered in this session")
        if item_id != state.pending:
            raise NotServedError(f"item {item_id!r} was not served; the pending item is "
                                 f"{state.pending!r}")
        r = self._check_response(i, response)
        audit = state.pending_audit
        scored = audit.rule != "pretest"
        skill = self.skill_of_item[i]
        event = ItemEvent(item_id, skill, r, scored, audit)
        given = memo.given.copy()
        given[i] = True
        excluded = memo.excluded.copy()
        excluded[i] = True
        if i in self.enemies:
            excluded[self.enemies[i]] = True
        if not scored:
            new = _Memo(memo.log_post, given, excluded, memo.counts, memo.theta, memo.se,
                        memo.llr, memo.n_scored, memo.n_pretest + 1)
            return self._advance(state.seed, (*state.events, event), state.trajectory,
                                 state.decisions, new, stop=None)
        lp = memo.log_post[skill] + self.compiled.log_p[i, r]
        theta, se = _eap_1d(lp, self.nodes)
        log_post = dict(memo.log_post)
        log_post[skill] = lp
        counts = dict(memo.counts)
        counts[skill] += 1
        thetas = dict(memo.theta)
        thetas[skill] = theta
        ses = dict(memo.se)
        ses[skill] = se
        llr = memo.llr
        decisions = state.decisions
        if skill in self._cut and skill not in decisions:
            llr = dict(llr)
            llr[skill] += float(self._llr[skill][i, r])
            verdict = self._classify(skill, llr[skill], theta, se)
            if verdict is not None:
                decisions = MappingProxyType({**decisions, skill: verdict})
        trajectory = dict(state.trajectory)
        trajectory[skill] = trajectory[skill] + (TrajectoryPoint(theta, se),)
        new = _Memo(log_post, given, excluded, counts, thetas, ses, llr, memo.n_scored + 1,
                    memo.n_pretest)
        stop = self._stop_reason(new, decisions)
        return self._advance(state.seed, (*state.events, event), MappingProxyType(trajectory),
                             decisions, new, stop)

    def estimates(self, state: CatState, method: str = "eap") -> dict[str, SkillEstimate]:
        """Per skill θ̂, SE and the number of scored items.

        ``method='eap'`` (default) gives the EAP and posterior SD on the session's grid;
        ``'mle'`` and ``'wle'`` (Warm 1989) rescore the skill's responses with `irt.mle` /
        `irt.wle` (SE ``= I(θ̂)^{−1/2}`` for ML, the weighted likelihood's curvature for WLE);
        skills without responses get the prior.
        """
        if method not in ("eap", "mle", "wle"):
            raise EngineError(f"method must be 'eap', 'mle' or 'wle', got {method!r}")
        out = {}
        for s in self.skill_names:
            pts = state.trajectory.get(s, ())
            n = len(pts)
            if n == 0:
                theta, se = self.prior[s]
            elif method == "eap":
                theta, se = pts[-1].theta, pts[-1].se
            else:
                ids = [e.item_id for e in state.events if e.scored and e.skill == s]
                x = np.array([[e.response for e in state.events if e.scored and e.skill == s]])
                sub = self.pool.bank.take([self.pool.index(iid) for iid in ids])
                est = (irt.mle if method == "mle" else irt.wle)(x, sub)
                theta, se = float(est.theta[0]), float(est.se[0])
            decision, decided = None, False
            if s in self._cut:
                if s in state.decisions:
                    decision, decided = state.decisions[s], True
                else:
                    decision = "pass" if theta >= self._cut[s] else "fail"
            out[s] = SkillEstimate(s, float(theta), float(se), n, method if n else "prior",
                                   decision, decided)
        return out

    # -- internals ---------------------------------------------------------------------
    def _check_response(self, i: int, response: Any) -> int:
        k = int(self.n_categories[i])
        if isinstance(response, bool) or not isinstance(response, int | np.integer):
            if isinstance(response, float | np.floating) and float(response).is_integer():
                response = int(response)
            else:
                raise ResponseOutOfRangeError(
                    f"item {self.pool.bank.item_ids[i]!r}: response must be an integer category "
                    f"0..{k - 1}, got {response!r}")
        r = int(response)
        if not 0 <= r < k:
            raise ResponseOutOfRangeError(f"item {self.pool.bank.item_ids[i]!r}: response {r} "
                                          f"out of range 0..{k - 1}")
        return r

    def _classify(self, skill: str, llr: float, theta: float, se: float) -> str | None:
        cls = self.blueprint.classification
        if cls.method == "sprt":
            if llr >= cls.upper_bound:
                return "pass"
            if llr <= cls.lower_bound:
                return "fail"
            return None
        cut = self._cut[skill]
        if theta - self._z * se > cut:
            return "pass"
        if theta + self._z * se < cut:
            return "fail"
        return None

    def _skill_done(self, s: str, memo: _Memo, decisions: Mapping[str, str]) -> str | None:
        n = memo.counts[s]
        if n >= self.skill_max[s]:
            return "max_items"
        if n >= max(self.skill_min[s], 1):
            if s in decisions:
                return "classified"
            target = self.blueprint.se_target
            if target is not None and memo.se[s] <= target:
                return "se_target"
        return None

    def _stop_reason(self, memo: _Memo, decisions: Mapping[str, str]) -> str | None:
        bp = self.blueprint
        if memo.n_scored >= bp.max_items:
            return "max_items"
        if memo.n_scored < bp.min_items:
            return None
        reasons = [self._skill_done(s, memo, decisions) for s in self.skill_names]
        if any(r is None for r in reasons):
            return None
        if "classified" in reasons:
            return "classified"
        if "se_target" in reasons:
            return "se_target"
        return "max_items"

    def _pick_skill(self, memo: _Memo, decisions: Mapping[str, str]) -> str | None:
        """Kingsbury–Zara content balancing: the open skill furthest below its target share."""
        bp = self.blueprint
        names = self.skill_names
        total = memo.n_scored
        excl = memo.excluded
        if len(names) == 1:
            s = names[0]
            return s if memo.counts[s] < self.skill_max[s] else None
        open_ = [memo.counts[s] < self.skill_max[s] and not excl[self.tables[s].idx].all()
                 for s in names]
        deficit = [max(self.skill_min[s] - memo.counts[s], 0) for s in names]
        budget = bp.max_items - total
        eligible = [o and self._skill_done(s, memo, decisions) is None
                    for s, o in zip(names, open_, strict=True)]
        if sum(d for d, o in zip(deficit, open_, strict=True) if o) >= budget:
            short = [o and d > 0 for o, d in zip(open_, deficit, strict=True)]
            if any(short):
                eligible = short
        if not any(eligible) and total < bp.min_items:
            eligible = open_
        best, best_score = None, -math.inf
        denom = max(total, 1)
        for s, ok in zip(names, eligible, strict=True):
            if ok:
                score = self.share[s] - memo.counts[s] / denom
                if score > best_score:
                    best, best_score = s, score
        return best

    def _select(self, seed: int, memo: _Memo, decisions: Mapping[str, str]
                ) -> tuple[str, SelectionAudit] | None:
        bp = self.blueprint
        position = memo.n_scored + memo.n_pretest + 1
        if (memo.n_pretest < bp.pretest_count and position in bp.pretest_positions
                and self.pretest_items.size):
            free = np.array([j for j in self.pretest_items.tolist() if not memo.given[j]
                             and not (j in self.enemies and memo.given[self.enemies[j]].any())],
                            dtype=np.int64)
            if free.size:
                u = uniform(seed, position, SALT_PRETEST)
                i = int(free[min(int(u * free.size), free.size - 1)])
                skill = self.skill_of_item[i]
                theta = memo.theta.get(skill, 0.0)
                return self.pool.bank.item_ids[i], SelectionAudit(
                    "pretest", "none", skill, theta, 0.0, 0, int(free.size))
        skill = self._pick_skill(memo, decisions)
        if skill is None:
            return None
        tables = self.tables[skill]
        excluded = memo.excluded[self._cols[skill]]
        n_given = memo.counts[skill]
        selector = effective_selector(bp.selector, n_given)
        theta = memo.theta[skill]
        ctx = SelectionContext(tables, np.array([theta]), memo.log_post[skill][None, :],
                               np.array([n_given]), self.skill_max[skill], self.nodes)
        crit = np.where(excluded, -np.inf, selector.criterion(ctx))
        n_free = excluded.size - int(np.count_nonzero(excluded))
        if n_free == 0:
            return None
        if self._plain:
            col, rank = int(crit[0].argmax()), 1
        else:
            choice = bp.exposure.choose(crit, tables, np.array([seed], dtype=np.uint64),
                                        np.array([memo.n_scored]), self.exposure_prepared)
            col, rank = int(choice.column[0]), int(choice.rank[0])
        i = int(tables.idx[col])
        audit = SelectionAudit(selector.name, bp.exposure.name, skill, theta,
                               float(crit[0, col]), rank, n_free)
        return self.pool.bank.item_ids[i], audit

    def _advance(self, seed: int, events: tuple[ItemEvent, ...],
                 trajectory: Mapping[str, tuple[TrajectoryPoint, ...]],
                 decisions: Mapping[str, str], memo: _Memo, stop: str | None) -> CatState:
        pending, audit = None, None
        if stop is None:
            pick = self._select(seed, memo, decisions)
            if pick is None:
                stop = "bank_exhausted"
            else:
                pending, audit = pick
        state = CatState(seed, events, pending, audit, trajectory, decisions, stop)
        object.__setattr__(state, "_memo", (self, memo))
        return state

    def _replay(self, state: CatState) -> _Memo:
        """Rebuild the working arrays of a deserialized state from its events."""
        log_post = dict(self.prior_log)
        given = np.zeros(len(self.pool), dtype=bool)
        excluded = self.base_excluded.copy()
        counts = dict.fromkeys(self.skill_names, 0)
        llr = dict.fromkeys(self._llr, 0.0)
        n_pretest = 0
        for e in state.events:
            if e.item_id not in self.pool:
                raise UnknownItemError(f"session state refers to item {e.item_id!r}, which is "
                                       f"not in the pool")
            i = self.pool.index(e.item_id)
            r = self._check_response(i, e.response)
            given[i] = excluded[i] = True
            if i in self.enemies:
                excluded[self.enemies[i]] = True
            if not e.scored:
                n_pretest += 1
                continue
            s = self.skill_of_item[i]
            if s not in counts:
                raise EngineError(f"session state: item {e.item_id!r} is of skill {s!r}, which "
                                  f"the blueprint does not cover")
            log_post[s] = log_post[s] + self.compiled.log_p[i, r]
            counts[s] += 1
            if s in llr:
                llr[s] += float(self._llr[s][i, r])
        theta = dict(self.start_theta)
        se = {s: p[1] for s, p in self.prior.items()}
        for s in self.skill_names:
            pts = state.trajectory.get(s, ())
            if len(pts) != counts[s]:
                raise EngineError(f"session state: skill {s!r} has {counts[s]} scored events "
                                  f"but {len(pts)} trajectory points")
            if pts:
                theta[s], se[s] = pts[-1].theta, pts[-1].se
        return _Memo(log_post, given, excluded, counts, theta, se, llr,
                     sum(counts.values()), n_pretest)
