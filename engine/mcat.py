"""Multidimensional CAT over correlated skills (issue 9).

Every item still measures exactly one skill (a *between-item* multidimensional model), but the
skills are correlated in the population: ``θ ~ N(μ, Σ)`` with ``Σ = D R D`` (``D`` the per-skill
prior SDs of the blueprint's start rule, ``R`` the latent correlation matrix, e.g. estimated by
`calibration.correlation`). The answers on one skill then inform the others through the prior.

Scoring: MAP with the Laplace approximation (Segall 1996). Because each item loads on one skill,
the log-likelihood separates, ``ℓ(θ) = Σ_s ℓ_s(θ_s)``, and the log posterior is
``ℓ(θ) − ½ (θ − μ)ᵀ Σ⁻¹ (θ − μ)``. Fisher scoring

    θ ← θ + (diag(I_s(θ_s)) + Σ⁻¹)⁻¹ (∇ℓ(θ) − Σ⁻¹ (θ − μ))

converges to the mode θ̂; the posterior covariance is approximated by
``C = (diag(I_s(θ̂_s)) + Σ⁻¹)⁻¹`` and each skill's SE is ``√C_ss``. The cost is one K × K solve
per iteration (K = number of skills), so 8 skills cost nothing next to the item evaluations.

Selection: D-optimality (Segall 1996; Mulder & van der Linden 2009). Giving item ``i`` of skill
``s`` adds ``I_i(θ̂_s) e_s e_sᵀ`` to the posterior information ``P = C⁻¹``; by the matrix
determinant lemma ``det(P + I_i e_s e_sᵀ) = det(P) (1 + I_i C_ss)``, so maximizing the determinant
means maximizing ``I_i(θ̂_s) · C_ss`` — one multiply per item. Skills whose SE is at target (and
that have their minimum number of items) or that reached their maximum receive no more items;
the test stops when every skill is done, at ``max_items``, or when the bank is exhausted. The
blueprint's exposure control (`engine.strategies`) chooses among the D-optimal ranking exactly
as in the unidimensional engine.

`McatEngine` has the public API of `engine.CatEngine` (``start``, ``next_item``, ``record``,
``finished``, ``estimates``) and the same `engine.CatState` values, so a stored session works the
same way; `simulate_sessions` runs any such engine session by session for simulation studies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

import irt
from engine._rng import SALT_PRETEST, derive_seed, uniform
from engine.blueprint import Blueprint, SkillSpec
from engine.errors import (
    AlreadyAnsweredError,
    ConfigurationError,
    EngineError,
    NotServedError,
    SessionFinishedError,
    UnknownItemError,
)
from engine.pool import PROB_FLOOR, ItemPool, SkillTables, as_pool
from engine.session import (
    CatEngine,
    CatState,
    ItemEvent,
    SelectionAudit,
    SessionEngine,
    SkillEstimate,
    TrajectoryPoint,
)
from engine.shadow import ShadowCatEngine, ShadowTest
from engine.simulation import SimulationResult

#: MAP Fisher-scoring tolerance on max |Δθ|, iteration cap and largest step.
MAP_TOL = 1e-7
MAP_MAX_ITER = 60
MAP_MAX_STEP = 1.0
#: MAP estimates are kept inside these bounds (a far-out mode is not a usable score).
MAP_BOUNDS = (-6.0, 6.0)


def correlation_matrix(value: Sequence[Sequence[float]] | ArrayLike, n_skills: int,
                       ) -> NDArray[np.float64]:
    """Validate a latent correlation matrix: ``(K, K)``, symmetric, unit diagonal, entries in
    (−1, 1) off the diagonal, positive definite. Raises `ConfigurationError` naming the entry."""
    try:
        r = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigurationError("correlations must be a square matrix of numbers") from None
    if r.shape != (n_skills, n_skills):
        raise ConfigurationError(f"correlations must be {n_skills} x {n_skills} (one row per "
                                 f"skill of the blueprint), got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ConfigurationError("correlations contain NaN or infinite values")
    for i in range(n_skills):
        if r[i, i] != 1.0:
            raise ConfigurationError(f"correlations[{i}][{i}] must be 1, got {r[i, i]}")
        for j in range(i + 1, n_skills):
            if abs(r[i, j] - r[j, i]) > 1e-9:
                raise ConfigurationError(f"correlations must be symmetric: [{i}][{j}] = "
                                         f"{r[i, j]} but [{j}][{i}] = {r[j, i]}")
            if not -1.0 < r[i, j] < 1.0:
                raise ConfigurationError(f"correlations[{i}][{j}] must be in (-1, 1), got "
                                         f"{r[i, j]}")
    if n_skills and np.linalg.eigvalsh(r).min() <= 1e-10:
        raise ConfigurationError("correlations matrix is not positive definite")
    return r


@dataclass(eq=False)
class _McatMemo:
    """Working arrays of a state (never serialized; rebuilt from the events when missing)."""

    given: NDArray[np.bool_]
    excluded: NDArray[np.bool_]
    counts: NDArray[np.int64]           # scored items per skill
    items: tuple[int, ...]              # bank positions of the scored items
    responses: tuple[int, ...]
    theta: NDArray[np.float64]          # MAP, (K,)
    cov: NDArray[np.float64]            # Laplace posterior covariance, (K, K)
    n_scored: int
    n_pretest: int

    @property
    def se(self) -> NDArray[np.float64]:
        return np.sqrt(np.diag(self.cov))


class McatEngine(SessionEngine):
    """Multidimensional adaptive test over correlated skills (see the module docstring).

    Parameters
    ----------
    pool : an `ItemPool` (or a bare `irt.Bank`).
    blueprint : the test configuration; its skills, lengths, SE target, exposure control, start
        rule (prior means and SDs per skill), pretest slots and excluded tags are honoured.
        ``blueprint.selector`` is not used (selection is D-optimal); classification is not
        supported (`ConfigurationError`).
    correlations : the latent correlation matrix in the order of the engine's skills; default
        ``blueprint.correlations`` when the blueprint has one, else the identity.
    """

    def __init__(self, pool: ItemPool | irt.Bank, blueprint: Blueprint | None = None,
                 correlations: Sequence[Sequence[float]] | ArrayLike | None = None) -> None:
        self.pool = as_pool(pool)
        self.blueprint = bp = blueprint if blueprint is not None else Blueprint()
        if bp.classification is not None:
            raise ConfigurationError("the multidimensional engine does not classify; remove "
                                     "'classification' or use the unidimensional engine")
        # The unidimensional engine validates skills, pretest items, enemies and exposure once;
        # its compiled tables are shared.
        base = CatEngine(self.pool, bp)
        self._base = base
        self.compiled = base.compiled
        self.specs: tuple[SkillSpec, ...] = base.specs
        self.skill_names = base.skill_names
        self.nodes = base.nodes
        k = len(self.skill_names)
        if correlations is None:
            correlations = bp.correlations
        self.correlations = (np.eye(k) if correlations is None
                             else correlation_matrix(correlations, k))
        mean_sd = np.array([bp.start.prior(s) for s in self.skill_names], dtype=float)
        self.prior_mean = mean_sd[:, 0]
        sd = mean_sd[:, 1]
        self.prior_cov = self.correlations * np.outer(sd, sd)
        self.prior_precision = np.linalg.inv(self.prior_cov)
        self.start_theta = np.array([bp.start.start_theta(s) for s in self.skill_names])
        self.skill_max = np.array([base.skill_max[s] for s in self.skill_names], dtype=np.int64)
        self.skill_min = np.array([base.skill_min[s] for s in self.skill_names], dtype=np.int64)
        bank = self.pool.bank
        pos = {s: j for j, s in enumerate(self.skill_names)}
        #: skill position of each bank item (−1: a skill outside the blueprint)
        self.skill_pos = np.array([pos.get(s, -1) for s in bank.skills], dtype=np.int64)
        self.base_excluded = base.base_excluded
        self.pretest_items = base.pretest_items
        self.enemies = base.enemies
        self.n_categories = bank.n_categories
        self.exposure_prepared = base.exposure_prepared
        self._tables = [self.compiled.skills[s] for s in self.skill_names]
        idx = np.arange(len(bank), dtype=np.int64)
        # One pseudo-skill over the whole bank, so the exposure controls' column ↔ item mapping
        # (``tables.idx``) is the identity.
        self._all = SkillTables("*", idx, bank, bank.a, bank.b, bank.c, bank.d, 0.5 * bank.a,
                                0.25 * bank.a**2, False, False, bank.model_code == 0,
                                np.empty((0, 0)))

    # -- public API (that of CatEngine) -------------------------------------------------
    def start(self, seed: int | None = None) -> CatState:
        """A fresh session (``seed`` defaults to the blueprint's) with its first item served."""
        seed = self.blueprint.seed if seed is None else int(seed)
        if not 0 <= seed < 2**64:
            raise EngineError(f"seed must be in [0, 2**64), got {seed}")
        k = len(self.skill_names)
        memo = _McatMemo(np.zeros(len(self.pool), dtype=bool), self.base_excluded.copy(),
                         np.zeros(k, dtype=np.int64), (), (), self.prior_mean.copy(),
                         self.prior_cov.copy(), 0, 0)
        traj = MappingProxyType({s: () for s in self.skill_names})
        return self._advance(seed, (), traj, memo, stop=None)

    def record(self, state: CatState, item_id: str, response: int) -> CatState:
        """Record the response to the served item, rescore all skills, serve the next item.

        Raises the same errors as `CatEngine.record`, leaving ``state`` unchanged.
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
        r = self._base._check_response(i, response)
        audit = state.pending_audit
        scored = audit.rule != "pretest"
        skill = self.pool.bank.skills[i]
        event = ItemEvent(item_id, skill, r, scored, audit)
        given = memo.given.copy()
        given[i] = True
        excluded = memo.excluded.copy()
        excluded[i] = True
        if i in self.enemies:
            excluded[self.enemies[i]] = True
        if not scored:
            new = _McatMemo(given, excluded, memo.counts, memo.items, memo.responses, memo.theta,
                            memo.cov, memo.n_scored, memo.n_pretest + 1)
            return self._advance(state.seed, (*state.events, event), state.trajectory, new,
                                 stop=None)
        items = (*memo.items, i)
        responses = (*memo.responses, r)
        # always from the prior mean: a deserialized state rescored once gets the same bits
        theta, cov = self.score(items, responses)
        counts = memo.counts.copy()
        s = int(self.skill_pos[i])
        counts[s] += 1
        new = _McatMemo(given, excluded, counts, items, responses, theta, cov,
                        memo.n_scored + 1, memo.n_pretest)
        trajectory = dict(state.trajectory)
        trajectory[skill] = (*trajectory[skill],
                             TrajectoryPoint(float(theta[s]), float(math.sqrt(cov[s, s]))))
        return self._advance(state.seed, (*state.events, event), MappingProxyType(trajectory),
                             new, self._stop_reason(new))

    def estimates(self, state: CatState, method: str = "map") -> dict[str, SkillEstimate]:
        """Per skill θ̂ (MAP under the multivariate prior), its SE (``√C_ss``, Laplace) and the
        number of scored items of the skill. ``method`` must be ``'map'`` (``'eap'`` is
        accepted as an alias so callers of `CatEngine.estimates` need no change)."""
        if method not in ("map", "eap"):
            raise EngineError(f"the multidimensional engine scores by 'map', got {method!r}")
        memo = self._memo(state)
        se = memo.se
        return {s: SkillEstimate(s, float(memo.theta[j]), float(se[j]), int(memo.counts[j]),
                                 "map" if memo.n_scored else "prior")
                for j, s in enumerate(self.skill_names)}

    def score(self, items: Sequence[int], responses: Sequence[int],
              start: NDArray[np.float64] | None = None
              ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """MAP θ̂ ``(K,)`` and Laplace posterior covariance ``(K, K)`` of a response pattern.

        ``items`` are bank positions, ``responses`` their categories. Fisher scoring from
        ``start`` (default the prior mean), see the module docstring (Segall 1996).
        """
        k = len(self.skill_names)
        mu, prec = self.prior_mean, self.prior_precision
        theta = (mu if start is None else np.asarray(start, dtype=float)).copy()
        if len(items) == 0:
            return mu.copy(), self.prior_cov.copy()
        idx = np.asarray(items, dtype=np.int64)
        resp = np.asarray(responses, dtype=np.int64)
        bank = self.pool.bank
        # `take`, not `rows`, for polytomous items: it trims the threshold columns to the
        # subset's categories, which `irt.paired_category_derivatives` needs
        rows = bank.rows(idx) if bank.model_code[idx].max() == 0 else bank.take(idx)
        spos = self.skill_pos[idx]
        j = np.arange(idx.size)
        derivatives = (self._dichotomous_derivatives if rows.all_dichotomous
                       else self._derivatives)
        info_s = np.zeros(k)
        for _ in range(MAP_MAX_ITER):
            grad, info = derivatives(theta[spos], rows, resp, j)
            g = np.bincount(spos, weights=grad, minlength=k) - prec @ (theta - mu)
            info_s = np.bincount(spos, weights=info, minlength=k)
            step = np.linalg.solve(np.diag(info_s) + prec, g)
            big = np.abs(step).max()
            if big > MAP_MAX_STEP:
                step *= MAP_MAX_STEP / big
            theta = np.clip(theta + step, *MAP_BOUNDS)
            if big < MAP_TOL:
                break
        _, info = derivatives(theta[spos], rows, resp, j)
        info_s = np.bincount(spos, weights=info, minlength=k)
        cov = np.linalg.inv(np.diag(info_s) + prec)
        return theta, cov

    # -- internals ---------------------------------------------------------------------
    @staticmethod
    def _derivatives(theta: NDArray, rows: irt.Bank, resp: NDArray, j: NDArray
                     ) -> tuple[NDArray, NDArray]:
        """Per response ``d log P(x | θ)/dθ`` and the item's Fisher information."""
        p, p1 = irt.paired_category_derivatives(theta, rows, order=1)
        pc = np.clip(p, PROB_FLOOR, None)
        grad = p1[j, resp] / pc[j, resp]
        info = np.sum(np.where(p > PROB_FLOOR, p1 * p1 / pc, 0.0), axis=-1)
        return grad, info

    @staticmethod
    def _dichotomous_derivatives(theta: NDArray, rows: irt.Bank, resp: NDArray, j: NDArray
                                 ) -> tuple[NDArray, NDArray]:
        """`_derivatives` for dichotomous items in closed form (Lord 1980, eq. 5-6):
        ``P = c + (d − c)σ``, ``P′ = (d − c) a σ(1 − σ)``; ``d log P(x)/dθ = P′/P`` (x = 1) or
        ``−P′/(1 − P)`` (x = 0); ``I = P′²/(P(1 − P))``."""
        sig = 0.5 * (1.0 + np.tanh(0.5 * rows.a * (theta - rows.b)))
        span = rows.d - rows.c
        p = np.clip(rows.c + span * sig, PROB_FLOOR, 1.0 - PROB_FLOOR)
        p1 = span * rows.a * sig * (1.0 - sig)
        grad = np.where(resp == 1, p1 / p, -p1 / (1.0 - p))
        return grad, p1 * p1 / (p * (1.0 - p))

    def _skill_done(self, memo: _McatMemo) -> NDArray[np.bool_]:
        """Skills that get no more items: at their maximum, or at the SE target with their
        minimum number of items."""
        done = memo.counts >= self.skill_max
        target = self.blueprint.se_target
        if target is not None:
            done |= (memo.se <= target) & (memo.counts >= self.skill_min)
        return done

    def _stop_reason(self, memo: _McatMemo) -> str | None:
        bp = self.blueprint
        if memo.n_scored >= bp.max_items:
            return "max_items"
        if memo.n_scored < bp.min_items:
            return None
        done = self._skill_done(memo)
        if not done.all():
            return None
        target = bp.se_target
        if target is not None and np.all(memo.se <= target):
            return "se_target"
        return "max_items"

    def criterion(self, memo: _McatMemo) -> NDArray[np.float64]:
        """D-optimality gain ``I_i(θ̂_s) · C_ss`` of every bank item (−inf where unavailable)."""
        crit = np.full(len(self.pool), -np.inf)
        c_diag = np.diag(memo.cov)
        done = self._skill_done(memo)
        bp = self.blueprint
        deficit = np.maximum(self.skill_min - memo.counts, 0)
        open_ = ~(memo.counts >= self.skill_max)
        if deficit[open_].sum() >= bp.max_items - memo.n_scored and deficit.any():
            allowed = open_ & (deficit > 0)   # the remaining budget belongs to the minima
        else:
            allowed = ~done
            if not allowed.any() and memo.n_scored < bp.min_items:
                allowed = open_
        for s, tab in enumerate(self._tables):
            if allowed[s]:
                crit[tab.idx] = tab.information(memo.theta[s:s + 1])[0] * c_diag[s]
        crit[memo.excluded] = -np.inf
        return crit

    def _select(self, seed: int, memo: _McatMemo) -> tuple[str, SelectionAudit] | None:
        bp = self.blueprint
        bank = self.pool.bank
        position = memo.n_scored + memo.n_pretest + 1
        if (memo.n_pretest < bp.pretest_count and position in bp.pretest_positions
                and self.pretest_items.size):
            free = np.array([j for j in self.pretest_items.tolist() if not memo.given[j]
                             and not (j in self.enemies and memo.given[self.enemies[j]].any())],
                            dtype=np.int64)
            if free.size:
                u = uniform(seed, position, SALT_PRETEST)
                i = int(free[min(int(u * free.size), free.size - 1)])
                s = int(self.skill_pos[i])
                return bank.item_ids[i], SelectionAudit(
                    "pretest", "none", bank.skills[i], float(memo.theta[s]), 0.0, 0,
                    int(free.size))
        crit = self.criterion(memo)
        n_free = int(np.isfinite(crit).sum())
        if n_free == 0:
            return None
        choice = bp.exposure.choose(crit[None, :], self._all, np.array([seed], dtype=np.uint64),
                                    np.array([memo.n_scored]), self.exposure_prepared)
        i, rank = int(choice.column[0]), int(choice.rank[0])
        s = int(self.skill_pos[i])
        return bank.item_ids[i], SelectionAudit("d_optimal", bp.exposure.name, bank.skills[i],
                                                float(memo.theta[s]), float(crit[i]), rank,
                                                n_free)

    def _advance(self, seed: int, events: tuple[ItemEvent, ...],
                 trajectory: Mapping[str, tuple[TrajectoryPoint, ...]], memo: _McatMemo,
                 stop: str | None) -> CatState:
        pending, audit = None, None
        if stop is None:
            pick = self._select(seed, memo)
            if pick is None:
                stop = "bank_exhausted"
            else:
                pending, audit = pick
        state = CatState(seed, events, pending, audit, trajectory, MappingProxyType({}), stop)
        object.__setattr__(state, "_memo", (self, memo))
        return state

    def _replay(self, state: CatState) -> _McatMemo:
        """Rebuild the working arrays of a deserialized state from its events."""
        k = len(self.skill_names)
        given = np.zeros(len(self.pool), dtype=bool)
        excluded = self.base_excluded.copy()
        counts = np.zeros(k, dtype=np.int64)
        items: list[int] = []
        responses: list[int] = []
        n_pretest = 0
        for e in state.events:
            if e.item_id not in self.pool:
                raise UnknownItemError(f"session state refers to item {e.item_id!r}, which is "
                                       f"not in the pool")
            i = self.pool.index(e.item_id)
            r = self._base._check_response(i, e.response)
            given[i] = excluded[i] = True
            if i in self.enemies:
                excluded[self.enemies[i]] = True
            if not e.scored:
                n_pretest += 1
                continue
            s = int(self.skill_pos[i])
            if s < 0:
                raise EngineError(f"session state: item {e.item_id!r} is of a skill the "
                                  f"blueprint does not cover")
            counts[s] += 1
            items.append(i)
            responses.append(r)
        for j, s in enumerate(self.skill_names):
            if len(state.trajectory.get(s, ())) != counts[j]:
                raise EngineError(f"session state: skill {s!r} has {counts[j]} scored events "
                                  f"but {len(state.trajectory.get(s, ()))} trajectory points")
        theta, cov = self.score(items, responses)
        return _McatMemo(given, excluded, counts, tuple(items), tuple(responses), theta, cov,
                         len(items), n_pretest)


def simulate_sessions(engine: Any, theta: ArrayLike, *, answers: ArrayLike | None = None,
                      rng: np.random.Generator | int | None = None,
                      seeds: Sequence[int] | None = None,
                      person_ids: Sequence[str] | None = None) -> SimulationResult:
    """Run ``engine`` (any engine with the `CatEngine` session API: `McatEngine`,
    `engine.shadow.ShadowCatEngine`, `CatEngine`) session by session for every simulee.

    ``theta`` is ``(n,)`` or ``(n, n_skills)`` in ``engine.skill_names`` order; ``answers``
    ``(n, n_items)`` pre-drawn categories (default: drawn from the model with ``rng``). Returns
    the same `SimulationResult` as `engine.simulation.simulate`.
    """
    skills = tuple(engine.skill_names)
    t = np.asarray(theta, dtype=float)
    if t.ndim == 1:
        t = np.repeat(t[:, None], len(skills), axis=1)
    if t.ndim != 2 or t.shape[1] != len(skills) or not np.all(np.isfinite(t)):
        raise EngineError(f"theta must be finite, (n,) or (n, {len(skills)}) for {skills}")
    n = t.shape[0]
    bank = engine.pool.bank
    if answers is None:
        g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        answers = np.zeros((n, len(bank)), dtype=np.int64)
        for k, s in enumerate(skills):
            idx = bank.skill_indices(s)
            answers[:, idx] = irt.simulate_responses(t[:, k], bank.take(idx), g)
    answers = np.asarray(answers)
    if answers.shape != (n, len(bank)):
        raise EngineError(f"answers must be ({n}, {len(bank)}), got {answers.shape}")
    if seeds is None:
        seeds = [derive_seed(engine.blueprint.seed, p) for p in range(n)]
    ids = tuple(person_ids) if person_ids is not None else tuple(str(p + 1) for p in range(n))
    length = engine.blueprint.max_items
    k = len(skills)
    theta_hat, se = np.zeros((n, k)), np.zeros((n, k))
    counts = np.zeros((n, k), dtype=np.int64)
    items = np.full((n, length), -1, dtype=np.int64)
    resp = np.full((n, length), -1, dtype=np.int64)
    path = np.full((n, length), np.nan)
    stops = []
    for p in range(n):
        state = engine.start(seed=int(seeds[p]))
        j = 0
        while state.stop_reason is None:
            item = state.pending
            i = engine.pool.index(item)
            state = engine.record(state, item, int(answers[p, i]))
            ev = state.events[-1]
            if ev.scored:
                items[p, j], resp[p, j] = i, ev.response
                path[p, j] = state.trajectory[ev.skill][-1].theta
                j += 1
        est = engine.estimates(state)
        for c, s in enumerate(skills):
            theta_hat[p, c], se[p, c], counts[p, c] = est[s].theta, est[s].se, est[s].n_items
        stops.append(state.stop_reason)
    return SimulationResult(
        person_ids=ids, skills=skills, theta_true=t, theta_hat=theta_hat, se=se,
        n_items=counts, stop_reason=tuple(stops), items=items, responses=resp, theta_path=path,
        n_bank_items=len(bank), eligible=~engine.base_excluded,
        decision=np.full((n, k), ""), decided=np.zeros((n, k), dtype=bool))


def make_engine(pool: ItemPool | irt.Bank, blueprint: Blueprint | None = None
                ) -> CatEngine | McatEngine:
    """The engine a blueprint asks for, all with the `CatEngine` session API.

    * ``blueprint.correlations`` set → `McatEngine` (multidimensional, D-optimal);
    * ``selector`` ``'shadow'`` → `engine.shadow.ShadowCatEngine`;
    * otherwise → `CatEngine`.

    Configuration errors (including infeasible shadow-test constraints) are raised here, when
    the test is configured, never in the middle of a candidate's test.
    """
    bp = blueprint if blueprint is not None else Blueprint()
    shadow = isinstance(bp.selector, ShadowTest)
    if bp.correlations is not None:
        if shadow:
            raise ConfigurationError("the shadow selector is not available with correlated "
                                     "skills (multidimensional scoring); choose one")
        return McatEngine(pool, bp)
    if shadow:
        return ShadowCatEngine(pool, bp)
    return CatEngine(pool, bp)
