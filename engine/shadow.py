"""Shadow-test item selection (van der Linden & Reese 1998; van der Linden 2005, ch. 9).

Before every item, a full-length *shadow test* is assembled by 0–1 integer programming: it
contains every item already given, satisfies every constraint of the blueprint, and maximizes
the test information at the current ability estimates,

    maximize   Σ_i I_i(θ̂_{s(i)}) x_i
    subject to Σ_{i operational} x_i = L                               (total length)
               n_min(s) ≤ Σ_{i ∈ skill s} x_i ≤ n_max(s)               (per-skill counts)
               m_min(t) ≤ Σ_{i tagged t} x_i ≤ m_max(t)                (per-tag counts)
               Σ_{i ∈ e} x_i ≤ 1 for every enemy set e
               Σ_{j pretest} x_j = pretest_count                       (pretest slots)
               x_i = 1 for items given; x_i = 0 for items excluded or over the exposure limit,
               x_i ∈ {0, 1},

solved by `scipy.optimize.milp` (HiGHS; Huangfu & Hall 2018). The most informative free item of
the shadow test is administered (through the blueprint's exposure control); at a pretest
position, one of the shadow test's pretest items. Because the previous shadow test always
contains the items given so far, every later problem is feasible once the first is: the
constraints are checked when the engine is configured (`ConfigurationError` if the bank cannot
meet them) and can never fail in the middle of a candidate's test. Shadow tests are fixed-length
(``blueprint.max_items`` scored items); the SE target is reported but not used to stop early.

Use it through the blueprint: ``selector=ShadowTest(...)`` (registered as ``"shadow"``); it is a
selector that plans the whole remaining test (`ShadowTest.plan`), so any scorer and exposure
control combine with it. The solve statistics are on ``engine.selector_prepared``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp

from engine.errors import ConfigurationError, EngineError
from engine.pool import ItemPool
from engine.rules import row_numbers
from engine.strategies import Selector, register

if TYPE_CHECKING:
    from engine.blueprint import Blueprint
    from engine.core import CatEngine
    from engine.rules import Rows, Work

logger = logging.getLogger(__name__)

#: HiGHS relative MIP gap for the shadow tests (the objective is information: 0.1 % is far below
#: what changes the chosen item in practice, and keeps solves fast).
MIP_REL_GAP = 1e-3
#: An LP-relaxation optimum within this of 0/1 everywhere is taken as the integer optimum.
INTEGRALITY_TOL = 1e-7
#: Number of recent solve times an engine keeps.
SOLVE_TIMES_KEPT = 100_000
#: Wall-clock limit per shadow-test solve, in seconds.
TIME_LIMIT = 10.0


@register("selector")
@dataclass(frozen=True)
class ShadowTest(Selector):
    """Settings of the shadow-test selector.

    Parameters
    ----------
    tag_counts : tag → ``[min, max]`` number of scored items carrying the tag (topics, item
        formats); ``max`` may be None (no upper bound).
    max_exposure : items whose observed exposure rate (`ItemPool.exposure_rates`) is at least
        this are left out of every shadow test (None: no limit).

    Per-skill counts come from the blueprint's `SkillSpec` ``min_items``/``max_items``, the
    total length from ``max_items``, enemy sets from the pool, pretest slots from
    ``pretest_count``.
    """

    name: ClassVar[str] = "shadow"
    tag_counts: Mapping[str, Sequence[int | None]] = field(default_factory=dict)
    max_exposure: float | None = None

    def __post_init__(self) -> None:
        clean = {}
        for tag, bounds in dict(self.tag_counts).items():
            try:
                lo, hi = bounds
            except (TypeError, ValueError):
                raise ConfigurationError(f"shadow: tag_counts[{tag!r}] must be [min, max], got "
                                         f"{bounds!r}") from None
            if (not isinstance(lo, int) or lo < 0
                    or (hi is not None and (not isinstance(hi, int) or hi < lo))):
                raise ConfigurationError(f"shadow: tag_counts[{tag!r}] needs integers "
                                         f"0 <= min <= max (max may be null), got {bounds!r}")
            clean[str(tag)] = [lo, hi]
        object.__setattr__(self, "tag_counts", clean)
        if self.max_exposure is not None and not 0.0 < float(self.max_exposure) <= 1.0:
            raise ConfigurationError(f"shadow: max_exposure must be in (0, 1], got "
                                     f"{self.max_exposure}")

    plans_test: ClassVar[bool] = True

    def prepare(self, eng: CatEngine) -> ShadowModel:
        """The integer program of ``eng``'s blueprint and pool; `ConfigurationError` when the
        bank cannot meet the constraints (naming the first one that cannot be met on its own)."""
        bp = eng.blueprint
        if bp.classification is not None or bp.stopping:
            raise ConfigurationError("shadow tests are fixed-length; classification and other "
                                     "stopping rules are not supported with the shadow selector")
        model = ShadowModel(eng, self)
        if model.solve(np.zeros(len(eng.pool), dtype=bool), eng.base_excluded,
                       eng.start_theta) is None:
            why = model.diagnosis()
            raise ConfigurationError(
                f"shadow test: the bank cannot meet the constraints: {why}" if why else
                "shadow test: the constraints cannot be met by this bank together (each one "
                "alone can: per-skill, per-tag, enemy, exposure and pretest constraints are "
                "jointly infeasible)")
        return model

    def plan(self, eng: CatEngine, prepared: ShadowModel, w: Work, rows: Rows
             ) -> NDArray[np.bool_]:
        numbers = row_numbers(rows, w.n_scored.shape[0])
        out = np.zeros((numbers.size, len(eng.pool)), dtype=bool)
        for j, r in enumerate(numbers.tolist()):
            sol = prepared.solve(w.given[r], w.blocked[r] | eng.base_excluded, w.theta[r])
            if sol is None:  # cannot happen once the first problem was feasible (module doc)
                raise EngineError("shadow test infeasible in mid-test; please report this")
            out[j, sol.items] = True
        out &= ~w.given[rows]
        return out


@dataclass(frozen=True, eq=False)
class ShadowSolution:
    """One solved shadow test: bank positions of its items and its objective value."""

    items: NDArray[np.int64]
    objective: float


class ShadowModel:
    """The constraint matrix of a blueprint's shadow tests and the solve statistics of an
    engine (``solve_times``: wall time of the latest solves, bounded, as a cached live engine
    serves many sessions; ``n_branch_and_bound``: solves whose LP relaxation was fractional)."""

    def __init__(self, eng: CatEngine, shadow: ShadowTest) -> None:
        bp, pool = eng.blueprint, eng.pool
        bank = pool.bank
        self.eng = eng
        n = len(bank)
        skills = np.asarray(bank.skills, dtype=object)
        self.operational = ~eng.base_excluded
        is_pre = np.zeros(n, dtype=bool)
        is_pre[eng.pretest_items] = True
        self.is_pretest = is_pre
        allowed = self.operational | is_pre
        if shadow.max_exposure is not None:
            allowed &= ~(pool.rates_array() >= float(shadow.max_exposure))
        self.allowed = allowed
        self.solve_times: deque[float] = deque(maxlen=SOLVE_TIMES_KEPT)
        self.n_branch_and_bound = 0
        rows: list[NDArray[np.float64]] = []
        lo: list[float] = []
        hi: list[float] = []
        self.labels: list[str] = []

        def add(mask: NDArray[np.bool_], low: float, high: float, label: str) -> None:
            rows.append(mask.astype(float))
            lo.append(low)
            hi.append(high)
            self.labels.append(label)

        add(self.operational, bp.max_items, bp.max_items, f"total length {bp.max_items}")
        for k, s in enumerate(eng.skill_names):
            smin, smax = int(eng.skill_min[k]), int(eng.skill_max[k])
            add(self.operational & (skills == s), smin, smax, f"skill {s!r}: {smin}..{smax} items")
        tag_of = pool.tags
        for tag, (tmin_, tmax) in shadow.tag_counts.items():
            tmin = int(tmin_ or 0)
            m = self.operational & np.array([tag in tag_of.get(iid, ()) for iid in bank.item_ids])
            top = np.inf if tmax is None else tmax
            add(m, tmin, top, f"tag {tag!r}: {tmin}..{'' if tmax is None else tmax} items")
        for g, group in enumerate(pool.enemy_groups):
            m = np.zeros(n, dtype=bool)
            m[[pool.index(i) for i in group]] = True
            add(m & (self.operational | is_pre), 0, 1, f"enemy set {g}")
        if bp.pretest_count:
            add(is_pre, bp.pretest_count, bp.pretest_count,
                f"{bp.pretest_count} pretest slots ({int(is_pre.sum())} pretest items)")
        self.A = sp.csr_array(np.vstack(rows))
        self.lo = np.array(lo, dtype=float)
        self.hi = np.array(hi, dtype=float)

    def diagnosis(self) -> str | None:
        """The first constraint that cannot be met on its own (None: only jointly)."""
        avail = self.A @ self.allowed.astype(float)
        length = self.eng.blueprint.max_items
        for k, label in enumerate(self.labels):
            if avail[k] < self.lo[k]:
                return (f"{label}: only {int(avail[k])} eligible item(s) for a minimum of "
                        f"{int(self.lo[k])}")
            if k > 0 and not self.is_pretest[self.A[[k]].indices].all() \
                    and self.lo[k] > length:
                return f"{label}: the minimum exceeds the test length {length}"
        return None

    def solve(self, given: NDArray[np.bool_], excluded: NDArray[np.bool_],
              theta: NDArray[np.float64]) -> ShadowSolution | None:
        """Assemble the shadow test: items ``given`` fixed in, ``excluded`` (not given) out,
        information at ``theta`` (one θ̂ per skill of the engine)."""
        eng = self.eng
        n = len(eng.pool)
        info = np.zeros(n)
        for k, tab in enumerate(eng.tables):
            info[tab.idx] = tab.information(theta[k:k + 1])[0]
        info[~self.operational] = 0.0
        lb = given.astype(float)
        # the session's own exclusions (enemies of given items); base exclusions are in allowed
        out = excluded & ~eng.base_excluded & ~given
        ub = np.maximum((self.allowed & ~out).astype(float), lb)
        t0 = time.perf_counter()
        bounds = Bounds(lb, ub)
        cons = LinearConstraint(self.A, self.lo, self.hi)
        # The LP relaxation first: when its optimum is integral (usual for these constraint
        # structures) it is the integer optimum; otherwise branch and bound. HiGHS's MIP presolve
        # costs more than it saves on problems this small, so it is off.
        res = milp(-info, integrality=np.zeros(n), bounds=bounds, constraints=cons)
        if res.x is not None and np.abs(res.x - np.round(res.x)).max() > INTEGRALITY_TOL:
            res = milp(-info, integrality=np.ones(n), bounds=bounds, constraints=cons,
                       options={"mip_rel_gap": MIP_REL_GAP, "time_limit": TIME_LIMIT,
                                "presolve": False})
            self.n_branch_and_bound += 1
        self.solve_times.append(time.perf_counter() - t0)
        if res.x is None:
            logger.debug("shadow test infeasible: %s", res.message)
            return None
        x = np.flatnonzero(res.x > 0.5)
        return ShadowSolution(x.astype(np.int64), float(-res.fun))


def constraint_violations(pool: ItemPool, blueprint: Blueprint,
                          served: Sequence[str]) -> list[str]:
    """Every constraint of a shadow-test blueprint that a served test (item ids, scored and
    pretest, in order) violates; an empty list means the test meets its blueprint."""
    sel = blueprint.selector
    if not isinstance(sel, ShadowTest):
        raise ConfigurationError("constraint_violations needs a blueprint with selector "
                                 "'shadow'")
    bank = pool.bank
    out = []
    if len(set(served)) != len(served):
        out.append("an item was served twice")
    status = {iid: pool.status[pool.index(iid)] for iid in served}
    scored = [i for i in served if status[i] == "operational"]
    pre = [i for i in served if status[i] == "pretest"]
    if len(scored) != blueprint.max_items:
        out.append(f"total length {len(scored)} != {blueprint.max_items}")
    if len(pre) != blueprint.pretest_count:
        out.append(f"{len(pre)} pretest items != {blueprint.pretest_count}")
    counts: dict[str, int] = {}
    for iid in scored:
        s = bank.skills[pool.index(iid)]
        counts[s] = counts.get(s, 0) + 1
    for spec in blueprint.skills:
        c = counts.get(spec.skill, 0)
        top = spec.max_items if spec.max_items is not None else blueprint.max_items
        if not spec.min_items <= c <= top:
            out.append(f"skill {spec.skill!r}: {c} items, outside {spec.min_items}..{top}")
    for tag, (lo, hi) in sel.tag_counts.items():
        c = sum(1 for iid in scored if tag in pool.tags.get(iid, ()))
        if c < int(lo or 0) or (hi is not None and c > hi):
            out.append(f"tag {tag!r}: {c} items, outside {lo}..{hi}")
    given = set(served)
    for g, group in enumerate(pool.enemy_groups):
        if len(given.intersection(group)) > 1:
            out.append(f"enemy set {g}: {sorted(given.intersection(group))} together")
    if sel.max_exposure is not None:
        rates = pool.exposure_rates
        over = [i for i in served if rates.get(i, 0.0) >= sel.max_exposure]
        if over:
            out.append(f"items over the exposure limit served: {over}")
    if pool.tags and blueprint.exclude_tags:
        bad = set(blueprint.exclude_tags)
        hit = [i for i in served if bad.intersection(pool.tags.get(i, ()))]
        if hit:
            out.append(f"excluded-tag items served: {hit}")
    return out
