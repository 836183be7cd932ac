"""The CAT step, written once and vectorized over sessions.

`CatEngine` compiles a blueprint over an item pool; its three step functions work on the
working arrays of any number of sessions (`engine.rules.Work`):

* `CatEngine.select` — the pretest policy, the content balancer, the selector (per skill, or over
  the bank for selectors that compete across skills or plan the whole test) and the exposure
  control pick each session's next item;
* `CatEngine.apply` — record the answers: exclusions and enemies, the scorer, the stopping
  rules' own state;
* `CatEngine.stop_codes` — the stopping rules: per-skill rules close skills, test-level rules
  stop the test, lengths bound both.

A live session is n = 1 (`start`, `record`: immutable JSON states, `CatState`); a simulation
study is n = N (`run`, used by `engine.simulation.simulate`). Both call the same functions, and
every reduction is row-wise, so the two give bit-identical sessions (the conformance battery
checks it for every strategy).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

import irt
from engine._rng import SALT_PRETEST, uniform_array
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
from engine.pool import ItemPool, SkillTables, as_pool, compile_bank
from engine.rules import (
    ALL,
    Classification,
    KingsburyZara,
    Rows,
    Stopper,
    Work,
    every,
    row_numbers,
    some,
    subset,
)
from engine.state import (
    STOP_REASONS,
    CatState,
    ItemEvent,
    SelectionAudit,
    SkillEstimate,
    TrajectoryPoint,
)
from engine.strategies import SelectionContext

RUNNING = -1
_MAX, _EXHAUSTED = STOP_REASONS.index("max_items"), STOP_REASONS.index("bank_exhausted")


@dataclass(eq=False, slots=True)
class Pick:
    """The next item of each row (bank position, −1: nothing left), whether it is an unscored
    pretest item, its criterion value, rank among the candidates and the number of candidates."""

    item: NDArray[np.int64]
    pretest: NDArray[np.bool_]
    criterion: NDArray[np.float64]
    rank: NDArray[np.int64]
    n_candidates: NDArray[np.int64]


class CatEngine:
    """Runs sessions of one blueprint over one item pool (build with `engine.make_engine`).

    ``start``, ``record``, ``next_item``, ``finished`` and ``estimates`` never mutate a state;
    ``record`` returns a new one and leaves the old one valid, so a failed call changes nothing.
    Configuration errors (unknown skills, infeasible shadow-test constraints, …) are raised here,
    when the test is configured, never in the middle of a candidate's test.
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
            for s in bp.skills:
                if s.skill not in comp.skills:
                    raise ConfigurationError(f"blueprint skill {s.skill!r} has no items in the "
                                             f"pool")
            specs = bp.skills
        else:
            specs = tuple(SkillSpec(s) for s in comp.skill_names
                          if operational[comp.skills[s].idx].any())
            if not specs:
                raise ConfigurationError("the pool has no operational items")
        self.specs = specs
        self.skill_names = names = tuple(s.skill for s in specs)
        self.skill_max = np.array([min(s.max_items or bp.max_items, bp.max_items)
                                   for s in specs], dtype=np.int64)
        self.skill_min = np.array([s.min_items for s in specs], dtype=np.int64)
        weights = np.array([s.weight for s in specs])
        self.share = weights / weights.sum()
        self.tables = [comp.skills[s] for s in names]
        pos = {s: k for k, s in enumerate(names)}
        #: skill position of each bank item (−1: a skill outside the blueprint)
        self.skill_pos = np.array([pos.get(s, -1) for s in bank.skills], dtype=np.int64)
        tagged = np.zeros(len(bank), dtype=bool)
        bad = set(bp.exclude_tags)
        for iid, tags in self.pool.tags.items():
            if bad.intersection(tags):
                tagged[self.pool.index(iid)] = True
        if bp.exclude_items:  # a retake: the items seen before
            tagged |= np.isin(np.asarray(bank.item_ids), list(bp.exclude_items))
        in_blueprint = self.skill_pos >= 0
        #: Items never selectable adaptively (not operational, other skills, excluded tags or
        #: items).
        self.base_excluded = ~operational | ~in_blueprint | tagged
        self.pretest_items = np.flatnonzero((status == "pretest") & in_blueprint & ~tagged)
        self.enemies = {i: e for i, e in enumerate(self.pool.enemies()) if e.size}
        self.has_enemy = np.zeros(len(bank), dtype=bool)
        self.has_enemy[list(self.enemies)] = True
        # a skill whose items are consecutive in the bank is read through a view, not a gather
        self.cols: list[slice | NDArray[np.int64]] = []
        for tab in self.tables:
            idx = tab.idx
            contiguous = idx.size and idx[-1] - idx[0] + 1 == idx.size
            self.cols.append(slice(int(idx[0]), int(idx[-1]) + 1) if contiguous else idx)
        #: per skill, its items never selectable adaptively
        self.excluded_in = [self.base_excluded[cols] for cols in self.cols]
        #: the skills' items end to end, and where each skill starts (segmented reductions)
        items = np.concatenate([tab.idx for tab in self.tables])
        in_order = items.size == len(bank) and bool((items == np.arange(len(bank))).all())
        self.skill_items: slice | NDArray[np.int64] = ALL if in_order else items
        self.skill_starts = np.cumsum([0] + [tab.idx.size for tab in self.tables[:-1]])
        #: per item of `skill_items`, whether it can ever be selected adaptively
        self.skill_items_open = ~self.base_excluded[self.skill_items]
        self.n_categories = bank.n_categories
        mean_sd = np.array([bp.start.prior(s) for s in names], dtype=float)
        self.prior_mean, self.prior_sd = mean_sd[:, 0], mean_sd[:, 1]
        corr = np.eye(len(names)) if bp.correlations is None else np.array(bp.correlations)
        self.prior_cov = corr * np.outer(self.prior_sd, self.prior_sd)
        self.start_theta = np.array([bp.start.start_theta(s) for s in names])
        self.prior_log = [-0.5 * ((self.nodes - m) / sd) ** 2
                          for m, sd in zip(self.prior_mean, self.prior_sd, strict=True)]
        # the roles, each prepared once per engine
        self.scorer = bp.scorer_rule
        self.selector = bp.selector_rule
        self.balancer = bp.balancer_rule
        self.exposure = bp.exposure
        self.pretest = bp.pretest
        self.has_pretest = bool(self.pretest.count and self.pretest_items.size)
        self.stoppers = bp.stop_rules
        self.enough = self.skill_min if self.scorer.borrows else np.maximum(self.skill_min, 1)
        self.classification = next((s for s in self.stoppers
                                     if isinstance(s, Classification)), None)
        self.scorer_prepared = self.scorer.prepare(self)
        self.stop_prepared = [s.prepare(self) for s in self.stoppers]
        self.exposure_prepared = bp.exposure.prepare(self.pool)
        self.one_skill_per_item = isinstance(self.balancer, KingsburyZara)
        self.bank_tables = SkillTables.build("*", np.arange(len(bank), dtype=np.int64), bank)
        #: each bank item's skill position, items outside the blueprint at 0 (always excluded)
        self.item_skill = np.maximum(self.skill_pos, 0)
        self.selector_prepared = self.selector.prepare(self)
        self._reasons = [STOP_REASONS.index(st.reason) for st in self.stoppers]
        rules = list(zip(self.stoppers, self.stop_prepared, strict=True))
        self._per_skill = [(st, prep, STOP_REASONS.index(st.reason)) for st, prep in rules
                           if type(st).skill_done is not Stopper.skill_done]
        self._test_level = [(st, prep) for st, prep in rules
                            if type(st).test_done is not Stopper.test_done]
        self._codes0 = np.full((1, len(names)), RUNNING)
        self._codes0 = self.skill_codes(self.new_work(np.zeros(1, dtype=np.uint64)), ALL)

    # -- the step, for any number of sessions --------------------------------------------
    def new_work(self, seeds: NDArray[np.uint64]) -> Work:
        """Working arrays of ``len(seeds)`` fresh sessions."""
        n, m, k = seeds.shape[0], len(self.pool), len(self.skill_names)
        length = self.blueprint.max_items
        return Work(
            seeds=seeds, given=np.zeros((n, m), dtype=bool), blocked=np.zeros((n, m), dtype=bool),
            counts=np.zeros((n, k), dtype=np.int64), n_scored=np.zeros(n, dtype=np.int64),
            n_pretest=np.zeros(n, dtype=np.int64), items=np.full((n, length), -1, np.int64),
            responses=np.full((n, length), -1, np.int64),
            theta=np.repeat(self.start_theta[None, :], n, axis=0),
            se=np.repeat(self.prior_sd[None, :], n, axis=0),
            cov=np.repeat(self.prior_cov[None], n, axis=0),
            log_post=[np.repeat(p[None, :], n, axis=0) for p in self.prior_log]
            if self.scorer.grid else None,
            llr=np.zeros((n, k)), verdict=np.zeros((n, k), dtype=np.int8),
            codes=np.repeat(self._codes0, n, axis=0),
            draws=self.exposure.draws(seeds, self.exposure_prepared))

    def skill_codes(self, w: Work, rows: Rows) -> NDArray[np.int64]:
        """Per row and skill, why the skill needs no more items (a `STOP_REASONS` index;
        −1 while it is open): its maximum first, then the stopping rules in order. Kept in
        ``w.codes`` after every scored answer (they change with nothing else)."""
        at_max = w.counts[rows] >= self.skill_max
        out = np.empty(at_max.shape, dtype=np.int64)
        out.fill(RUNNING)
        for st, prep, code in self._per_skill[::-1]:  # the first rule written last: it wins
            done = st.skill_done(self, prep, w, rows)
            if done is not None:
                out[done] = code
        out[at_max] = _MAX
        return out

    def stop_codes(self, w: Work, rows: Rows) -> NDArray[np.int64]:
        """The stop reason of each row (−1: continue): ``max_items`` at the test's maximum;
        nothing below its minimum; a test-level rule that fires; else, once every skill is
        closed, the first rule (in order) that closed one, or ``max_items``."""
        n = w.n_scored[rows]
        codes = w.codes[rows]
        if codes.shape[1] == 1:  # one skill: its own code (the rule below, reduced)
            out = codes[:, 0].copy()
        else:
            out = np.full(n.shape[0], _MAX)
            for c in self._reasons[::-1]:
                out[np.logical_or.reduce(codes == c, axis=1)] = c
            out[np.logical_or.reduce(codes == RUNNING, axis=1)] = RUNNING
        for st, prep in self._test_level:
            hit = st.test_done(self, prep, w, rows)
            if hit is not None:
                out[hit] = STOP_REASONS.index(st.reason)
        out[n < self.blueprint.min_items] = RUNNING
        out[n >= self.blueprint.max_items] = _MAX
        return out

    def select(self, w: Work, rows: Rows) -> Pick:
        """The next item of each of ``rows`` (see `Pick`)."""
        n = w.n_scored[rows].shape[0]
        ints = np.zeros((3, n), dtype=np.int64)  # item, rank, number of candidates
        out = Pick(ints[0], np.zeros(n, dtype=bool), np.zeros(n), ints[1], ints[2])
        out.item[:] = -1
        any_pre = False
        plan = (self.selector.plan(self, self.selector_prepared, w, rows)
                if self.selector.plans_test else None)
        if self.has_pretest:
            position = w.n_scored[rows] + w.n_pretest[rows] + 1
            due = np.flatnonzero(self.pretest.due(position, w.n_pretest[rows]))
            if due.size:
                rd = row_numbers(rows, w.n_scored.shape[0])[due]
                free = ~w.blocked[rd][:, self.pretest_items]
                if plan is not None:
                    free &= plan[due][:, self.pretest_items]
                count = free.sum(axis=1)
                u = uniform_array(w.seeds[rd], position[due], SALT_PRETEST)
                k = np.minimum((u * count).astype(np.int64), np.maximum(count - 1, 0))
                j = np.argmax(np.cumsum(free, axis=1) > k[:, None], axis=1)
                ok = count > 0
                d = due[ok]
                out.item[d], out.pretest[d] = self.pretest_items[j[ok]], True
                out.n_candidates[d] = count[ok]
                any_pre = d.size > 0
        rest: Rows = ALL
        r = rows
        if any_pre:
            if every(out.pretest):
                return out
            rest, r = np.flatnonzero(~out.pretest), subset(rows, ~out.pretest)
        allowed = self.balancer.allowed(self, w, r, w.codes[r] != RUNNING)
        if plan is None and self.one_skill_per_item:
            self._select_in_skill(w, r, rest, allowed, out)
        else:
            self._select_in_bank(w, r, rest, allowed, plan, out)
        return out

    def selection_context(self, w: Work, rows: Rows, k: int) -> SelectionContext:
        return SelectionContext(self.tables[k], w.theta[rows, k], w.cov[rows, k, k],
                                None if w.log_post is None else w.log_post[k][rows],
                                w.counts[rows, k], int(self.skill_max[k]), self.nodes, k,
                                w.cov[rows, k, :], self.selector_prepared)

    def _criteria(self, w: Work, r: Rows, k: int, mask: NDArray[np.bool_]
                  ) -> Iterator[tuple[Rows, Rows, NDArray[np.float64]]]:
        """Skill ``k``'s criterion for the rows ``r[mask]``, per group of the selector (KL hands
        over to MFI): positions within ``r``, the rows of ``w``, the criterion."""
        in_k, r_k = subset(ALL, mask), subset(r, mask)
        for part, sel in self.selector.split(w.counts[r_k, k]):
            if part is None or part.any():
                sub, rows = (in_k, r_k) if part is None else (subset(in_k, part),
                                                               subset(r_k, part))
                yield sub, rows, sel.criterion(self.selection_context(w, rows, k))

    def _select_in_skill(self, w: Work, r: Rows, rest: Rows, allowed: NDArray[np.bool_],
                         out: Pick) -> None:
        """One skill per row (the balancer's pick): the skill's items only."""
        if allowed.shape[1] == 1:
            groups = [(0, allowed[:, 0])]
        else:
            skill, has = allowed.argmax(axis=1), np.logical_or.reduce(allowed, axis=1)
            groups = ([(int(skill[0]), has)] if has.shape[0] == 1 else
                      [(k, has & (skill == k)) for k in np.unique(skill[has]).tolist()])
        for k, mask in groups:
            if some(mask):
                for sub, rows, c in self._criteria(w, r, k, mask):
                    np.putmask(c, w.blocked[rows][:, self.cols[k]] | self.excluded_in[k],
                               -np.inf)
                    at = sub if isinstance(rest, slice) else rest[sub]  # positions in ``out``
                    self._choose(c, self.tables[k], w, rows, at, out)

    def _select_in_bank(self, w: Work, r: Rows, rest: Rows, allowed: NDArray[np.bool_],
                        plan: NDArray[np.bool_] | None, out: Pick) -> None:
        """Skills compete (or a planned test restricts the items): one criterion over the bank."""
        if plan is None and self.selector.item_wise and self.bank_tables.all_dichotomous:
            # every item at its own skill's values, in one context (bit-identical to the loop)
            sk = self.item_skill
            cov = w.cov[r]
            c = self.selector.criterion(SelectionContext(
                self.bank_tables, w.theta[r][:, sk], np.diagonal(cov, 0, 1, 2)[:, sk], None,
                w.counts[r][:, sk], 0, self.nodes, -1, cov, self.selector_prepared, sk))
            np.putmask(c, ~allowed[:, sk] | w.blocked[r] | self.base_excluded, -np.inf)
            self._choose(c, self.bank_tables, w, r, rest, out)
            return
        c = np.full((w.n_scored[r].shape[0], len(self.pool)), -np.inf)
        for k, tab in enumerate(self.tables):
            mask = allowed[:, k]
            if not some(mask):
                continue
            if plan is not None:  # the plan's items, by their information at θ̂
                c[np.flatnonzero(mask)[:, None], tab.idx] = tab.information(
                    w.theta[subset(r, mask), k])
                continue
            for sub, _, value in self._criteria(w, r, k, mask):
                if isinstance(sub, slice):  # every row
                    c[:, self.cols[k]] = value
                else:
                    c[sub[:, None], tab.idx] = value
        closed = w.blocked[r] | self.base_excluded
        if plan is not None:
            closed |= ~plan
        c[closed] = -np.inf
        self._choose(c, self.bank_tables, w, r, rest, out)

    def _choose(self, c: NDArray[np.float64], tab: SkillTables, w: Work, rows: Rows, at: Rows,
                out: Pick) -> None:
        """The exposure control's choice among the items of ``tab`` by criterion ``c`` (−inf:
        unavailable) for ``rows``, written to positions ``at`` of ``out``."""
        choice = self.exposure.choose(c, tab, w.seeds[rows], w.n_scored[rows],
                                      self.exposure_prepared,
                                      None if w.draws is None else w.draws[rows])
        col, rk = choice.column, choice.rank
        if col.shape[0] == 1:  # one row: scalar indexing
            j, p = col.item(0), 0 if isinstance(at, slice) else at.item(0)
            best = c.item(0, j)
            if best > -math.inf:
                out.item[p], out.criterion[p], out.rank[p] = tab.idx.item(j), best, rk.item(0)
                out.n_candidates[p] = np.count_nonzero(c > -math.inf)
            return
        value = c[np.arange(col.size), col]
        ok = value > -np.inf
        if not every(ok):
            at, col, rk, value, c = subset(at, ok), col[ok], rk[ok], value[ok], c[ok]
        out.item[at], out.criterion[at], out.rank[at] = tab.idx[col], value, rk
        out.n_candidates[at] = np.add.reduce(c > -np.inf, axis=1)

    def apply(self, w: Work, rows: Rows, items: NDArray[np.int64],
              responses: NDArray[np.int64], scored: NDArray[np.bool_]) -> None:
        """Record answer ``responses[j]`` of row ``rows[j]`` to ``items[j]`` (in place)."""
        num = row_numbers(rows, w.n_scored.shape[0])  # (row, item) pairs: no outer indexing
        if num.shape[0] == 1:  # one session (live): the same writes, by scalar indexing
            p, i0 = int(num[0]), int(items[0])
            w.given[p, i0] = w.blocked[p, i0] = True
            if i0 in self.enemies:
                w.blocked[p, self.enemies[i0]] = True
            if not scored[0]:
                w.n_pretest[p] += 1
                return
            r, i, x, k = rows, items, responses, self.skill_pos[i0:i0 + 1]
            pos = int(w.n_scored[p])
            w.items[p, pos], w.responses[p, pos] = i0, responses[0]
            w.counts[p, int(k[0])] += 1
            w.n_scored[p] += 1
        else:
            w.given[num, items] = w.blocked[num, items] = True
            for j in np.flatnonzero(self.has_enemy[items]).tolist():
                w.blocked[num[j], self.enemies[int(items[j])]] = True
            if not every(scored):
                w.n_pretest[num[~scored]] += 1
                if not some(scored):
                    return
            r, i, x, num = subset(rows, scored), items[scored], responses[scored], num[scored]
            k = self.skill_pos[i]
            positions = w.n_scored[num]
            w.items[num, positions] = i
            w.responses[num, positions] = x
            w.counts[num, k] += 1
            w.n_scored[num] += 1
        self.scorer.update(self, w, r, i, x, k)
        for st, prep in zip(self.stoppers, self.stop_prepared, strict=True):
            st.update(self, prep, w, r, i, x, k)
        w.codes[r] = self.skill_codes(w, r)

    def run(self, answers: NDArray[np.integer], seeds: NDArray[np.uint64]
            ) -> tuple[Work, NDArray[np.int64], NDArray[np.float64]]:
        """Run ``len(seeds)`` sessions to their end, answering from ``answers`` (sessions ×
        bank items); returns the final working arrays, the stop codes and the θ̂ of each scored
        item's skill after it (sessions × ``max_items``, NaN after the end)."""
        n = seeds.shape[0]
        w = self.new_work(seeds)
        stop = np.full(n, RUNNING, dtype=np.int64)
        path = np.full((n, self.blueprint.max_items), np.nan)
        act = np.arange(n)
        while act.size:
            pick = self.select(w, act)
            none = pick.item < 0
            stop[act[none]] = _EXHAUSTED
            rows, its, pre = act[~none], pick.item[~none], pick.pretest[~none]
            pos = w.n_scored[rows]
            self.apply(w, rows, its, answers[rows, its].astype(np.int64), ~pre)
            sc = rows[~pre]
            path[sc, pos[~pre]] = w.theta[sc, self.skill_pos[its[~pre]]]
            stop[sc] = self.stop_codes(w, sc)
            act = np.flatnonzero(stop == RUNNING)
        return w, stop, path

    # -- live sessions (n = 1) -----------------------------------------------------------
    def start(self, seed: int | None = None) -> CatState:
        """A fresh session (``seed`` defaults to the blueprint's) with its first item served."""
        seed = self.blueprint.seed if seed is None else int(seed)
        if not 0 <= seed < 2**64:
            raise EngineError(f"seed must be in [0, 2**64), got {seed}")
        w = self.new_work(np.array([seed], dtype=np.uint64))
        return self._advance(seed, (), MappingProxyType({s: () for s in self.skill_names}),
                             MappingProxyType({}), w, None)

    def next_item(self, state: CatState) -> str | None:
        """The item served to this state (None once finished). Deterministic in the state."""
        return state.pending

    def finished(self, state: CatState) -> str | None:
        """The stop reason, or None while the session runs."""
        return state.stop_reason

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
        memo = self.work(state)
        if memo.given[0, i]:
            raise AlreadyAnsweredError(f"item {item_id!r} was already answered in this session")
        if item_id != state.pending:
            raise NotServedError(f"item {item_id!r} was not served; the pending item is "
                                 f"{state.pending!r}")
        r = self._check_response(i, response)
        audit = state.pending_audit
        assert audit is not None
        scored = audit.rule != "pretest"
        skill = self.pool.bank.skills[i]
        event = ItemEvent(item_id, skill, r, scored, audit)
        # the old state's cached arrays become the new state's (no copy): the old state, still
        # valid, rebuilds its own from its events if it is ever used again
        state.drop_working()
        w = memo
        self.apply(w, ALL, np.array([i]), np.array([r]), np.array([scored]))
        trajectory, decisions, stop = state.trajectory, state.decisions, None
        if scored:
            k = self.skill_pos.item(i)
            traj = dict(trajectory)
            traj[skill] = (*traj[skill], TrajectoryPoint(w.theta.item(0, k), w.se.item(0, k)))
            trajectory = MappingProxyType(traj)
            if w.verdict[0, k] and skill not in decisions:
                decisions = MappingProxyType({**decisions,
                                              skill: ("pass", "fail")[w.verdict[0, k] - 1]})
            code = self.stop_codes(w, ALL).item(0)
            stop = None if code == RUNNING else STOP_REASONS[code]
        return self._advance(state.seed, (*state.events, event), trajectory, decisions, w, stop)

    def rescore(self, state: CatState, drop: Collection[int]) -> CatState:
        """``state`` with the answers at the 1-based positions ``drop`` left unscored: the
        other scored answers are scored again, from the prior, in the order given, by the same
        step as the live session (`apply`). Effort-moderated scoring (Wise & DeMars 2006)
        leaves rapid guesses out this way; the result is deterministic in (state, drop), so a
        replay that drops the same positions reproduces it exactly. The returned state is
        closed (no pending item) and keeps the stored stop reason; its decisions are those the
        rules reach on the kept answers."""
        drop = set(drop)
        events = tuple(dataclasses.replace(e, scored=False) if n in drop and e.scored else e
                       for n, e in enumerate(state.events, start=1))
        w = self.new_work(np.array([state.seed], dtype=np.uint64))
        traj: dict[str, tuple[TrajectoryPoint, ...]] = {s: () for s in self.skill_names}
        decisions: dict[str, str] = {}
        for e in events:
            i = self.pool.index(e.item_id)
            self.apply(w, ALL, np.array([i]), np.array([e.response]), np.array([e.scored]))
            if e.scored:
                k = int(self.skill_pos[i])
                traj[e.skill] = (*traj[e.skill], TrajectoryPoint(float(w.theta[0, k]),
                                                                 float(w.se[0, k])))
                if w.verdict[0, k] and e.skill not in decisions:
                    decisions[e.skill] = ("pass", "fail")[w.verdict[0, k] - 1]
        out = CatState(state.seed, events, None, None, MappingProxyType(traj),
                       MappingProxyType(decisions), state.stop_reason)
        out.keep_working(self, w)
        return out

    def estimates(self, state: CatState, method: str | None = None) -> dict[str, SkillEstimate]:
        """Per skill θ̂, SE and the number of scored items.

        ``method=None`` (or the scorer's name; ``'eap'``/``'map'`` are aliases of each other)
        gives the scorer's estimate — EAP and posterior SD on the grid, or MAP with the Laplace
        SE; ``'mle'`` and ``'wle'`` (Warm 1989) rescore the skill's responses with `irt.mle` /
        `irt.wle` (SE ``= I(θ̂)^{−1/2}``). Skills without responses get the prior (unless the
        scorer borrows strength from the other skills).
        """
        if method not in (None, "eap", "map", "mle", "wle"):
            raise EngineError(f"method must be 'eap', 'map', 'mle' or 'wle', got {method!r}")
        rescore = method in ("mle", "wle")
        label = str(method) if rescore else self.scorer.name
        w = self.work(state)
        cuts = (self.stop_prepared[self.stoppers.index(self.classification)][0]
                if self.classification is not None else None)
        out = {}
        for k, s in enumerate(self.skill_names):
            n = int(w.counts[0, k])
            if n == 0 and not (self.scorer.borrows and w.n_scored[0]):
                theta, se, how = float(self.prior_mean[k]), float(self.prior_sd[k]), "prior"
            elif rescore and n:
                events = [e for e in state.events if e.scored and e.skill == s]
                sub = self.pool.bank.take([self.pool.index(e.item_id) for e in events])
                est = (irt.mle if method == "mle" else irt.wle)(
                    np.array([[e.response for e in events]]), sub)
                theta, se, how = float(est.theta[0]), float(est.se[0]), label
            else:
                theta, se, how = float(w.theta[0, k]), float(w.se[0, k]), str(self.scorer.name)
            decision, decided = None, False
            if cuts is not None and not np.isnan(cuts[k]):
                decided = bool(w.verdict[0, k])
                decision = (("pass", "fail")[w.verdict[0, k] - 1] if decided
                            else "pass" if theta >= cuts[k] else "fail")
            out[s] = SkillEstimate(s, theta, se, n, how, decision, decided)
        return out

    # -- internals -----------------------------------------------------------------------
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

    def _advance(self, seed: int, events: tuple[ItemEvent, ...],
                 trajectory: Mapping[str, tuple[TrajectoryPoint, ...]],
                 decisions: Mapping[str, str], w: Work, stop: str | None) -> CatState:
        pending, audit = None, None
        if stop is None:
            pick = self.select(w, ALL)
            i = pick.item.item(0)
            if i < 0:
                stop = "bank_exhausted"
            else:
                k, pre = self.skill_pos.item(i), pick.pretest.item(0)
                pending = self.pool.bank.item_ids[i]
                audit = SelectionAudit(
                    "pretest" if pre else self.selector.rule(w.counts.item(0, k)),
                    "none" if pre else self.exposure.name, self.skill_names[k],
                    w.theta.item(0, k), pick.criterion.item(0), pick.rank.item(0),
                    pick.n_candidates.item(0), self._balance_reason(w, k, pre))
        state = CatState(seed, events, pending, audit, trajectory, decisions, stop)
        state.keep_working(self, w)
        return state

    def _balance_reason(self, w: Work, k: int, pretest: bool) -> str:
        """Why skill ``k`` was served next (`SelectionAudit.balance`), in the balancer's terms:
        Kingsbury–Zara serves the open skill furthest below its target share ``weight / Σ
        weight`` of the scored items; open balancing lets every open skill compete through the
        criterion; a shadow test serves from its planned test."""
        n = int(w.n_scored[0])
        if pretest:
            return f"pretest slot at position {n + int(w.n_pretest[0]) + 1}"
        if self.selector.plans_test:
            return "shadow test: the most informative item of the planned test"
        if len(self.skill_names) == 1:
            return "single skill"
        if self.one_skill_per_item:
            return (f"{self.balancer.name}: furthest below its target share "
                    f"({int(w.counts[0, k])} of {n} scored items, target "
                    f"{float(self.share[k]):.3f})")
        open_ = w.codes[0] == RUNNING
        if self.balancer.name == "minimums_first":
            short = np.count_nonzero(open_ & (w.counts[0] < self.skill_min))
            if short:
                return (f"{self.balancer.name}: {short} skill(s) below their minimum competed "
                        f"on the criterion")
        return (f"{self.balancer.name}: {np.count_nonzero(open_)} open skill(s) competed on the "
                f"criterion")

    def work(self, state: CatState) -> Work:
        w = state.working(self)
        if w is None:
            w = self._replay(state)
            state.keep_working(self, w)
        return w

    def _replay(self, state: CatState) -> Work:
        """The working arrays of a stored state, from its events in one pass of array
        operations (the per-answer cost does not grow with the answers already given)."""
        w = self.new_work(np.array([state.seed], dtype=np.uint64))
        try:
            idx = np.array([self.pool.index(e.item_id) for e in state.events], dtype=np.int64)
        except KeyError as exc:
            raise UnknownItemError(f"session state refers to item {exc.args[0]!r}, which is "
                                   f"not in the pool") from None
        resp = np.array([e.response for e in state.events], dtype=np.int64)
        scored = np.array([e.scored for e in state.events], dtype=bool)
        if idx.size:
            bad = (resp < 0) | (resp >= self.n_categories[idx])
            if bad.any():
                self._check_response(int(idx[bad][0]), int(resp[bad][0]))
            if (self.skill_pos[idx[scored]] < 0).any():
                raise EngineError("session state: a scored item is of a skill the blueprint "
                                  "does not cover")
            if idx[scored].size > self.blueprint.max_items:
                raise EngineError("session state: more scored items than the blueprint's "
                                  "max_items")
        w.given[0, idx] = w.blocked[0, idx] = True
        for i in idx[self.has_enemy[idx]].tolist():
            w.blocked[0, self.enemies[i]] = True
        w.n_pretest[0] = int((~scored).sum())
        it = idx[scored]
        w.n_scored[0] = it.size
        w.items[0, : it.size], w.responses[0, : it.size] = it, resp[scored]
        w.counts[0] = np.bincount(self.skill_pos[it], minlength=len(self.skill_names))
        last = np.full((len(self.skill_names), 2), np.nan)
        for k, s in enumerate(self.skill_names):
            pts = state.trajectory.get(s, ())
            if len(pts) != w.counts[0, k]:
                raise EngineError(f"session state: skill {s!r} has {w.counts[0, k]} scored "
                                  f"events but {len(pts)} trajectory points")
            if pts:
                last[k] = pts[-1].theta, pts[-1].se
        self.scorer.replay(self, w, last)
        for st, prep in zip(self.stoppers, self.stop_prepared, strict=True):
            st.replay(self, prep, w, state.decisions)
        w.codes[0] = self.skill_codes(w, ALL)[0]
        return w


def make_engine(pool: ItemPool | irt.Bank, blueprint: Blueprint | None = None) -> CatEngine:
    """The engine of a blueprint: every role (scorer, selector — shadow tests included —,
    exposure, content balancer, pretest policy, stopping rules) is the blueprint's strategy, so
    one engine class serves unidimensional, multidimensional and shadow-test blueprints.

    Configuration errors (including infeasible shadow-test constraints) are raised here, when
    the test is configured, never in the middle of a candidate's test.
    """
    return CatEngine(pool, blueprint)
