"""The roles of a CAT step besides selection and exposure: scoring, content balancing, pretest
slots and stopping. Each is a registered strategy (`engine.strategies.register`) that works on
the working arrays of ``n`` sessions (`Work`), so a live session (n = 1) and a simulation study
(n = N) run the same arithmetic row by row.

Adding a rule is one class here, its ``@register`` line and a row in the conformance battery
(tests/engine/test_engine_conformance.py).

References: Bock & Mislevy (1982) EAP; Segall (1996) MAP with the Laplace covariance under a
correlated prior; Kingsbury & Zara (1989) content balancing; Wald (1947), Reckase (1983) and
Eggen (1999) for the SPRT; Kingsbury & Weiss (1983) for confidence-interval classification.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from engine.errors import ConfigurationError
from engine.strategies import Strategy, register
from irt import kernels

if TYPE_CHECKING:
    from engine.core import CatEngine as Engine

#: MAP Fisher-scoring tolerance on max |Δθ|, iteration cap and largest step.
MAP_TOL = 1e-7
MAP_MAX_ITER = 60
MAP_MAX_STEP = 1.0
#: MAP estimates are kept inside these bounds (a far-out mode is not a usable score).
MAP_BOUNDS = (-6.0, 6.0)


#: The rows a step function works on: all rows of the `Work` (`ALL`, basic indexing: a live
#: session, or every simulee still running) or an array of row numbers.
Rows = slice | NDArray[np.int64]
ALL: slice = slice(None)


def every(mask: NDArray[np.bool_]) -> bool:
    """``mask.all()`` of a 1-D mask, without the reduction's call overhead for one row."""
    return bool(mask[0]) if mask.shape[0] == 1 else bool(np.logical_and.reduce(mask))


def some(mask: NDArray[np.bool_]) -> bool:
    """``mask.any()`` of a 1-D mask, without the reduction's call overhead for one row."""
    return bool(mask[0]) if mask.shape[0] == 1 else bool(np.logical_or.reduce(mask))


def subset(rows: Rows, mask: NDArray[np.bool_]) -> Rows:
    """The rows of ``rows`` where ``mask`` holds (``rows`` itself when it holds everywhere)."""
    if every(mask):
        return rows
    idx = np.flatnonzero(mask)
    return idx if isinstance(rows, slice) else rows[idx]


def row_numbers(rows: Rows, n: int) -> NDArray[np.int64]:
    return np.arange(n)[rows] if isinstance(rows, slice) else rows


def pairs(table: NDArray[np.float64], i: NDArray[np.int64], x: NDArray[np.int64]
          ) -> NDArray[np.float64]:
    """``table[i, x]`` of paired index arrays (one pair: by scalar indexing, no gather)."""
    return table[i[0], x[0]][None] if i.shape[0] == 1 else table[i, x]


@dataclass(eq=False)
class Work:
    """Working arrays of ``n`` sessions (row ``p`` is session ``p``); never serialized.

    ``blocked`` marks items given or enemies of given items; ``items``/``responses`` hold the
    scored items in order (−1 after the end); ``cov`` is the posterior covariance of the skills
    (diagonal for independent per-skill scoring); ``log_post`` the per-skill log posteriors on
    the grid (grid scorers only); ``llr``/``verdict`` the classification state (1 pass, 2 fail).
    """

    seeds: NDArray[np.uint64]
    given: NDArray[np.bool_]
    blocked: NDArray[np.bool_]
    counts: NDArray[np.int64]
    n_scored: NDArray[np.int64]
    n_pretest: NDArray[np.int64]
    items: NDArray[np.int64]
    responses: NDArray[np.int64]
    theta: NDArray[np.float64]
    se: NDArray[np.float64]
    cov: NDArray[np.float64]
    log_post: list[NDArray[np.float64]] | None
    llr: NDArray[np.float64]
    verdict: NDArray[np.int8]
    codes: NDArray[np.int64]  # per skill: why it is closed (`CatEngine.skill_codes`), −1 open
    #: the exposure control's fixed per-session draws over the bank (`ExposureControl.draws`)
    draws: NDArray[np.bool_] | None = None

    def scored_items(self, skill_pos: NDArray[np.int64]) -> tuple[NDArray[np.int64], ...]:
        """Items, responses and skill positions of session 0's scored answers, in order."""
        n = int(self.n_scored[0])
        return self.items[0, :n], self.responses[0, :n], skill_pos[self.items[0, :n]]


# --------------------------------------------------------------------------- scorers

class Scorer(Strategy):
    kind: ClassVar[str] = "scorer"
    #: True when a skill's estimate moves with the answers to other skills' items.
    borrows: ClassVar[bool] = False
    #: True when the scorer keeps per-skill log posteriors on the θ grid.
    grid: ClassVar[bool] = False

    def prepare(self, eng: Engine) -> Any:
        return None

    def update(self, eng: Engine, w: Work, rows: Rows, items: NDArray[np.int64],
               resp: NDArray[np.int64], skill: NDArray[np.int64]) -> None:
        """Rescore ``rows`` after their answer ``resp`` to ``items`` (of skill positions
        ``skill``), already appended to ``w.items``/``w.responses``/``w.counts``."""
        raise NotImplementedError

    def replay(self, eng: Engine, w: Work, last: NDArray[np.float64]) -> None:
        """Rebuild the scorer's arrays of a one-session `Work` from its scored items;
        ``last`` (S, 2) is the stored θ̂ and SE of each skill's latest response (NaN: none)."""
        raise NotImplementedError


@register("scorer")
@dataclass(frozen=True)
class EAPScorer(Scorer):
    """Per-skill EAP on the blueprint's grid, kept incrementally: the log posterior of a skill
    is the log prior plus one ``log P_i(x | θ_q)`` row per response (Bock & Mislevy 1982)."""

    name: ClassVar[str] = "eap"
    grid: ClassVar[bool] = True

    def update(self, eng: Engine, w: Work, rows: Rows, items: NDArray[np.int64],
               resp: NDArray[np.int64], skill: NDArray[np.int64]) -> None:
        assert w.log_post is not None
        one = len(w.log_post) == 1
        whole = one or skill.shape[0] == 1  # every row in one skill
        for k in [0] if one else [int(skill[0])] if whole else np.unique(skill).tolist():
            m: slice | NDArray[np.bool_] = ALL if whole else skill == k
            r = rows if whole else subset(rows, skill == k)
            lp = w.log_post[k][r] + pairs(eng.compiled.log_p, items[m], resp[m])
            w.log_post[k][r] = lp
            th, sd = kernels.eap_on_grid(lp[0] if lp.shape[0] == 1 else lp, eng.nodes)
            w.theta[r, k] = th
            w.se[r, k] = sd
            w.cov[r, k, k] = sd * sd

    def replay(self, eng: Engine, w: Work, last: NDArray[np.float64]) -> None:
        assert w.log_post is not None
        items, resp, skill = w.scored_items(eng.skill_pos)
        for k in range(len(eng.skill_names)):
            m = skill == k
            if m.any():  # the same sequential sum as the incremental updates
                rows = np.vstack([w.log_post[k][:1], eng.compiled.log_p[items[m], resp[m]]])
                w.log_post[k][0] = np.cumsum(rows, axis=0)[-1]
                w.theta[0, k], w.se[0, k] = last[k]
                w.cov[0, k, k] = last[k, 1] ** 2


@register("scorer")
@dataclass(frozen=True)
class MAPScorer(Scorer):
    """MAP under the correlated prior ``θ ~ N(μ, Σ)``, ``Σ = D R D`` (``R`` the blueprint's
    ``correlations``, identity when unset; ``D`` and ``μ`` from the start rule), with the
    Laplace posterior covariance ``C = (diag(I_s(θ̂_s)) + Σ⁻¹)⁻¹`` (Segall 1996).

    Each item loads on one skill, so ``ℓ(θ) = Σ_s ℓ_s(θ_s)`` and Fisher scoring
    ``θ ← θ + (diag(I_s) + Σ⁻¹)⁻¹ (∇ℓ − Σ⁻¹(θ − μ))`` costs one K × K solve per iteration.
    Every update rescores from the prior mean, so a stored session rescored once gets the same
    bits. One solve per session (a stack of K × K matrices), identical for 1 or N sessions.
    """

    name: ClassVar[str] = "map"
    borrows: ClassVar[bool] = True

    def prepare(self, eng: Engine) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return eng.prior_mean, np.linalg.inv(eng.prior_cov)

    def update(self, eng: Engine, w: Work, rows: Rows, items: NDArray[np.int64],
               resp: NDArray[np.int64], skill: NDArray[np.int64]) -> None:
        theta, cov = self.score(eng, w.items[rows], w.responses[rows])
        w.theta[rows] = theta
        w.cov[rows] = cov
        w.se[rows] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))

    def replay(self, eng: Engine, w: Work, last: NDArray[np.float64]) -> None:
        if w.n_scored[0]:
            theta, cov = self.score(eng, w.items, w.responses)
            w.theta[:], w.cov[:] = theta, cov
            w.se[:] = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))

    def score(self, eng: Engine, items: NDArray[np.int64], resp: NDArray[np.int64]
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """MAP θ̂ ``(n, K)`` and Laplace covariance ``(n, K, K)`` of ``n`` response patterns
        (``items``/``resp`` ``(n, L)``, −1 padded), by Fisher scoring from the prior mean
        (dichotomous banks: the item parameters gathered once per call, not per iteration)."""
        mu, prec = eng.scorer_prepared
        n, k = items.shape[0], mu.shape[0]
        theta = np.repeat(mu[None, :], n, axis=0)
        row, pos = np.nonzero(items >= 0)
        it, x = items[row, pos], resp[row, pos]
        sk = eng.skill_pos[it]
        cell = row * k + sk
        eye, bank = np.eye(k), eng.pool.bank
        par = (np.stack([bank.a[it], bank.b[it], bank.c[it], bank.d[it]])
               if it.size and not bank.model_code[it].any() else None)
        act, e_row, e_sk, e_it, e_x, e_cell = np.arange(n), row, sk, it, x, cell
        every_row = True  # act is every session: theta[act] is theta
        for _ in range(MAP_MAX_ITER if it.size else 0):
            grad, info = (kernels.paired_score_information(bank, theta[e_row, e_sk], e_it, e_x)
                          if par is None else
                          kernels.dichotomous_score(theta[e_row, e_sk], par[0], par[1], par[2],
                                                    par[3], e_x))
            # bincount with float weights sums in float64 (numpy's stubs type it as integers)
            g = cast(NDArray[np.float64],
                     np.bincount(e_cell, weights=grad, minlength=n * k).reshape(n, k))
            info_s = np.bincount(e_cell, weights=info, minlength=n * k).reshape(n, k)
            th = theta if every_row else theta[act]
            if not every_row:
                g, info_s = g[act], info_s[act]
            g -= np.add.reduce((th - mu)[:, None, :] * prec, axis=2)  # row-wise: no BLAS
            step = _solve(prec + info_s[:, :, None] * eye, g[:, :, None])[:, :, 0]
            big = np.maximum.reduce(np.abs(step), axis=1)
            over = big > MAP_MAX_STEP
            if some(over):
                step[over] *= (MAP_MAX_STEP / big[over])[:, None]
            new = np.minimum(np.maximum(th + step, MAP_BOUNDS[0]), MAP_BOUNDS[1])  # np.clip
            if every_row:
                theta = new
            else:
                theta[act] = new
            done = big < MAP_TOL
            if every(done):
                break
            if some(done):  # the sessions still iterating, and their responses
                act, every_row = act[~done], False
                keep = np.isin(e_row, act)
                e_row, e_sk, e_it, e_x, e_cell = (e_row[keep], e_sk[keep], e_it[keep],
                                                  e_x[keep], e_cell[keep])
                par = None if par is None else par[:, keep]
        info_total = np.zeros((n, k))
        if it.size:
            _, info = kernels.paired_score_information(bank, theta[row, sk], it, x)
            info_total = np.bincount(cell, weights=info, minlength=n * k).reshape(n, k)
        return theta, np.linalg.inv(prec + info_total[:, :, None] * np.eye(k))


#: The LAPACK ``gesv`` gufunc behind ``np.linalg.solve``.
_GESV = np.linalg._umath_linalg.solve


def _solve(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """``np.linalg.solve`` of stacked systems without its argument checks (the same gufunc and
    results; a singular system raises `LinAlgError` as there)."""
    with np.errstate(call=_singular, invalid="call", over="ignore", divide="ignore",
                     under="ignore"):
        return _GESV(a, b, signature="dd->d")


def _singular(err: str, flag: int) -> None:
    raise np.linalg.LinAlgError("Singular matrix")


# --------------------------------------------------------------------------- content balancing

class ContentBalancer(Strategy):
    kind: ClassVar[str] = "balancer"

    def allowed(self, eng: Engine, w: Work, rows: Rows,
                done: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """The skills each row may draw its next scored item from, ``(n, S)``."""
        raise NotImplementedError


def eligible_skills(eng: Engine, w: Work, rows: Rows, done: NDArray[np.bool_],
                    items_left: bool = True) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Skills that are open (below their maximum, items left — checked when ``items_left``)
    and not done; when the remaining budget is needed for the skills' minimums, only the skills
    short of theirs; below the test's minimum length, any open skill. Returns the mask and the
    counts of ``rows``."""
    c = w.counts[rows]
    open_ = c < eng.skill_max
    if len(eng.skill_names) == 1:  # the general rule below, reduced for one skill
        return open_ & (~done | (w.n_scored[rows] < eng.blueprint.min_items)[:, None]), c
    if items_left:  # (one skill returned above: exhaustion shows as an all −inf criterion)
        # per skill, some item neither blocked nor excluded: one segmented reduction over the
        # skills' items laid end to end (`CatEngine.skill_items`, `skill_starts`)
        free = eng.skill_items_open > w.blocked[rows][:, eng.skill_items]  # open, not blocked
        open_ &= np.logical_or.reduceat(free, eng.skill_starts, axis=1)
    eligible = open_ & ~done
    deficit = np.maximum(eng.skill_min - c, 0)
    budget = eng.blueprint.max_items - w.n_scored[rows]
    short = open_ & (deficit > 0)
    # ufunc reductions called directly (``x.sum``/``x.any`` add a Python wrapper per call)
    use_short = ((np.add.reduce(deficit * open_, axis=1) >= budget)
                 & np.logical_or.reduce(short, axis=1))
    eligible = np.where(use_short[:, None], short, eligible)
    fallback = (~np.logical_or.reduce(eligible, axis=1)
                & (w.n_scored[rows] < eng.blueprint.min_items))
    return np.where(fallback[:, None], open_, eligible), c


@register("balancer")
@dataclass(frozen=True)
class KingsburyZara(ContentBalancer):
    """The eligible skill furthest below its target share ``weight / Σ weight`` of the items
    given so far (Kingsbury & Zara 1989); one skill per item."""

    name: ClassVar[str] = "kingsbury_zara"

    def allowed(self, eng: Engine, w: Work, rows: Rows,
                done: NDArray[np.bool_]) -> NDArray[np.bool_]:
        eligible, c = eligible_skills(eng, w, rows, done)
        if eligible.shape[1] == 1:
            return eligible
        score = np.where(eligible, eng.share - c / np.maximum(w.n_scored[rows], 1)[:, None],
                         -np.inf)
        best = np.argmax(score, axis=1)
        out = np.zeros_like(eligible)
        out[np.arange(out.shape[0]), best] = eligible.any(axis=1)
        return out


@register("balancer")
@dataclass(frozen=True)
class OpenSkills(ContentBalancer):
    """Every eligible skill competes through the selection criterion (with D-optimality, the
    multidimensional CAT of Segall 1996: skills with larger posterior variance gain more)."""

    name: ClassVar[str] = "open"

    def allowed(self, eng: Engine, w: Work, rows: Rows,
                done: NDArray[np.bool_]) -> NDArray[np.bool_]:
        # an exhausted skill's items are all −inf in the common criterion: no check needed
        return eligible_skills(eng, w, rows, done, items_left=False)[0]


@register("balancer")
@dataclass(frozen=True)
class MinimumsFirst(ContentBalancer):
    """Skills below their minimum number of items first, then every eligible skill; within
    each group the skills compete through the selection criterion (as with ``open``).

    With a composite selector (``c_optimal``) and a test-level stopping rule (`CompositeSE`),
    serving the minimums at the start means the test never runs on past its overall target
    only to reach a skill's minimum, and every skill has an estimate before the criterion
    weighs the skills against each other.
    """

    name: ClassVar[str] = "minimums_first"

    def allowed(self, eng: Engine, w: Work, rows: Rows,
                done: NDArray[np.bool_]) -> NDArray[np.bool_]:
        eligible, c = eligible_skills(eng, w, rows, done)
        short = eligible & (c < eng.skill_min)
        any_short = np.logical_or.reduce(short, axis=1)
        return np.where(any_short[:, None], short, eligible)


# --------------------------------------------------------------------------- pretest slots

class PretestPolicy(Strategy):
    kind: ClassVar[str] = "pretest"

    def due(self, position: NDArray[np.int64], n_pretest: NDArray[np.int64]
            ) -> NDArray[np.bool_]:
        """Rows whose next served item (1-based ``position``) is an unscored pretest item."""
        raise NotImplementedError


@register("pretest")
@dataclass(frozen=True)
class FixedPositions(PretestPolicy):
    """``count`` unscored pretest items at the 1-based ``positions`` of the served sequence
    (default every second position from 2), each drawn uniformly among the free pretest items
    (not given, no enemy given) with the session's counter-based random stream."""

    name: ClassVar[str] = "positions"
    count: int = 0
    positions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 0:
            raise ConfigurationError("pretest: count must be an integer >= 0")
        pos = tuple(int(p) for p in self.positions) or tuple(range(2, 2 + 2 * self.count, 2))
        if len(pos) != self.count or any(p < 1 for p in pos) or len(set(pos)) != len(pos):
            raise ConfigurationError(f"pretest_positions must be {self.count} distinct "
                                     f"positions >= 1, got {self.positions}")
        object.__setattr__(self, "positions", tuple(sorted(pos)))

    def due(self, position: NDArray[np.int64], n_pretest: NDArray[np.int64]
            ) -> NDArray[np.bool_]:
        return (n_pretest < self.count) & np.isin(position, self.positions)


# --------------------------------------------------------------------------- stopping rules

class Stopper(Strategy):
    """A stopping rule: skills that need no more items (`skill_done`) and/or a test-level
    stop (`test_done`); ``reason`` is recorded as the session's stop reason."""

    kind: ClassVar[str] = "stopper"
    reason: ClassVar[str]

    def prepare(self, eng: Engine) -> Any:
        return None

    def update(self, eng: Engine, prep: Any, w: Work, rows: Rows,
               items: NDArray[np.int64], resp: NDArray[np.int64], skill: NDArray[np.int64]
               ) -> None:
        """Called after each scored answer, once the scorer has updated ``w``."""

    def replay(self, eng: Engine, prep: Any, w: Work, decisions: Mapping[str, str]) -> None:
        """Rebuild the rule's arrays of a one-session `Work` loaded from a stored state."""

    def skill_done(self, eng: Engine, prep: Any, w: Work, rows: Rows
                   ) -> NDArray[np.bool_] | None:
        return None

    def test_done(self, eng: Engine, prep: Any, w: Work, rows: Rows
                  ) -> NDArray[np.bool_] | None:
        return None


@register("stopper")
@dataclass(frozen=True)
class SETarget(Stopper):
    """A skill is done once its posterior SD is at most ``se_target`` (with its minimum number
    of items; at least one unless the scorer borrows strength across skills)."""

    name: ClassVar[str] = "se"
    reason: ClassVar[str] = "se_target"
    se_target: float = 0.3

    def __post_init__(self) -> None:
        if not (isinstance(self.se_target, int | float) and self.se_target > 0):
            raise ConfigurationError(f"se_target must be > 0, got {self.se_target}")

    def skill_done(self, eng: Engine, prep: Any, w: Work, rows: Rows
                   ) -> NDArray[np.bool_]:
        return (w.counts[rows] >= eng.enough) & (w.se[rows] <= self.se_target)


CLASSIFICATION_METHODS = ("sprt", "ci")


@register("stopper")
@dataclass(frozen=True)
class Classification(Stopper):
    """Pass/fail classification against a cut score ``cut`` (one value or skill → value); a
    classified skill is done once decided.

    ``method='sprt'``: Wald's sequential probability ratio test of θ = cut + δ against
    θ = cut − δ (Reckase 1983; Eggen 1999); decide pass when ``log LR ≥ log((1 − β)/α)`` and fail
    when ``log LR ≤ log(β/(1 − α))``. ``method='ci'``: decide once the interval
    ``θ̂ ± z·SE`` (two-sided ``level``) excludes the cut (Kingsbury & Weiss 1983).
    """

    name: ClassVar[str] = "classification"
    reason: ClassVar[str] = "classified"
    cut: float | Mapping[str, float] = 0.0
    method: str = "sprt"
    alpha: float = 0.05
    beta: float = 0.05
    delta: float = 0.3
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.method not in CLASSIFICATION_METHODS:
            raise ConfigurationError(f"classification method must be one of "
                                     f"{CLASSIFICATION_METHODS}, got {self.method!r}")
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise ConfigurationError("classification: alpha and beta must be in (0, 0.5)")
        if not self.delta > 0 or not 0 < self.level < 1:
            raise ConfigurationError("classification: delta must be > 0 and level in (0, 1)")
        cuts = self.cut.values() if isinstance(self.cut, Mapping) else [self.cut]
        if any(not math.isfinite(float(c)) for c in cuts):
            raise ConfigurationError("classification: cut scores must be finite")

    def cut_for(self, skill: str) -> float | None:
        """The cut of ``skill``; None when a per-skill mapping leaves it out (not classified)."""
        if isinstance(self.cut, Mapping):
            return float(self.cut[skill]) if skill in self.cut else None
        return float(self.cut)

    def prepare(self, eng: Engine) -> tuple[NDArray[np.float64], dict[int, NDArray], float]:
        cuts = np.array([np.nan if (c := self.cut_for(s)) is None else c
                         for s in eng.skill_names])
        llr = {k: eng.compiled.log_likelihood_ratio(float(c) + self.delta,
                                                     float(c) - self.delta)
               for k, c in enumerate(cuts) if not np.isnan(c)}
        return cuts, llr, float(norm.ppf(0.5 + self.level / 2.0))

    def update(self, eng: Engine, prep: Any, w: Work, rows: Rows,
               items: NDArray[np.int64], resp: NDArray[np.int64], skill: NDArray[np.int64]
               ) -> None:
        cuts, llr, z = prep
        for k, table in llr.items():
            m = (skill == k) & (w.verdict[rows, k] == 0)
            if not m.any():
                continue
            r = subset(rows, m)
            w.llr[r, k] += pairs(table, items[m], resp[m])
            if self.method == "sprt":
                v = w.llr[r, k]
                up = v >= math.log((1.0 - self.beta) / self.alpha)
                down = v <= math.log(self.beta / (1.0 - self.alpha))
            else:
                th, sd = w.theta[r, k], w.se[r, k]
                up, down = th - z * sd > cuts[k], th + z * sd < cuts[k]
            w.verdict[subset(r, up), k] = 1
            w.verdict[subset(r, down & ~up), k] = 2

    def replay(self, eng: Engine, prep: Any, w: Work, decisions: Mapping[str, str]) -> None:
        items, resp, skill = w.scored_items(eng.skill_pos)
        for k, table in prep[1].items():
            m = skill == k
            if m.any():  # 0 + v1 + v2 + …, in order, as the incremental updates
                w.llr[0, k] = np.cumsum(np.concatenate([[0.0], table[items[m], resp[m]]]))[-1]
            verdict = decisions.get(eng.skill_names[k])
            if verdict is not None:
                w.verdict[0, k] = 1 if verdict == "pass" else 2

    def skill_done(self, eng: Engine, prep: Any, w: Work, rows: Rows
                   ) -> NDArray[np.bool_]:
        return (w.counts[rows] >= eng.enough) & (w.verdict[rows] > 0)


@register("stopper")
@dataclass(frozen=True)
class CompositeSE(Stopper):
    """Stop the test once the standard error of a weighted sum of the skills' θ,
    ``SE(Σ_s w_s θ_s) = √(wᵀ C w)`` with ``C`` the posterior covariance of the skills (the
    Laplace covariance under the MAP scorer, diagonal under per-skill EAP), is at most
    ``se_target`` and every skill has at least its ``min_items`` here (skill → count) and its
    blueprint minimum (`SkillSpec.min_items`).

    ``weights`` maps skills to weights ≥ 0 (unlisted skills weigh 0), scaled to sum to 1 so
    that the rule stops on the SE of exactly the overall score the report shows (a weighted
    *mean*, `irt.composite.normalized_weights`: weights 2, 1, 1 mean ½, ¼, ¼); empty means equal
    weights ``1/S``. The rule does not close single skills, so it combines with the per-skill SE
    rule (``se_target`` of the blueprint) or replaces it (set that None).
    """

    name: ClassVar[str] = "composite"
    reason: ClassVar[str] = "composite_se"
    se_target: float = 0.25
    weights: Mapping[str, float] = field(default_factory=dict)
    min_items: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.se_target, int | float) and self.se_target > 0):
            raise ConfigurationError(f"composite: se_target must be > 0, got {self.se_target}")
        for s, v in dict(self.weights).items():
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ConfigurationError(f"composite: weight of {s!r} must be a finite number "
                                         f">= 0, got {v!r}")
        for s, v in dict(self.min_items).items():
            if not isinstance(v, int) or v < 0:
                raise ConfigurationError(f"composite: min_items of {s!r} must be an integer "
                                         f">= 0, got {v!r}")
        object.__setattr__(self, "weights", {str(k): float(v) for k, v in self.weights.items()})
        object.__setattr__(self, "min_items", {str(k): v for k, v in self.min_items.items()})

    def prepare(self, eng: Engine) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        names = eng.skill_names
        unknown = (set(self.weights) | set(self.min_items)) - set(names)
        if unknown:
            raise ConfigurationError(f"composite: unknown skill(s) {sorted(unknown)}; the "
                                     f"blueprint's skills are {list(names)}")
        if self.weights:
            wv = np.array([self.weights.get(s, 0.0) for s in names])
            if not np.any(wv != 0):
                raise ConfigurationError("composite: every weight is 0")
            wv = wv / wv.sum()
        else:
            wv = np.full(len(names), 1.0 / len(names))
        # a skill's own minimum (`SkillSpec.min_items`) holds for this rule too
        mins = np.array([self.min_items.get(s, 0) for s in names], dtype=np.int64)
        return wv, np.maximum(mins, eng.skill_min)

    def composite_se(self, prep: Any, cov: NDArray[np.float64]) -> NDArray[np.float64]:
        """``√(wᵀ C w)`` for each covariance of the stack ``cov`` ``(n, S, S)``."""
        wv = prep[0]
        terms = cov * wv[None, :, None] * wv[None, None, :]
        # the sum over both axes as one reduction over S² contiguous terms (what
        # ``sum(axis=(1, 2))`` does, without its Python wrapper)
        quad = np.add.reduce(terms.reshape(terms.shape[0], terms.shape[1] * terms.shape[2]),
                             axis=1)
        return np.sqrt(np.maximum(quad, 0.0))

    def test_done(self, eng: Engine, prep: Any, w: Work, rows: Rows
                  ) -> NDArray[np.bool_]:
        enough = np.logical_and.reduce(w.counts[rows] >= prep[1], axis=1)
        return enough & (self.composite_se(prep, w.cov[rows]) <= self.se_target)
