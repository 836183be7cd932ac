"""Simulation studies: many simulees advanced together, vectorized across simulees.

`simulate` runs the blueprint of a `CatEngine` for every simulee at once through the engine's
one step (`CatEngine.run`: the same functions a live session calls with one row), so the results
equal running the sessions one by one with the same seeds and answers (tested for every
strategy). Unscored pretest items are served and answered as in live sessions.

`summarize` gives the usual CAT study statistics (bias, RMSE, conditional bias/RMSE by θ
decile, test length, item exposure, test overlap after Chen, Ankenmann & Spray 2003, unused share
of the bank); `simulate_fixed_form` gives the fixed-form comparison; `tune_sympson_hetter`
finds Sympson–Hetter exposure parameters by iterative simulation (Sympson & Hetter 1985).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

import irt
from engine._rng import derive_seed
from engine.core import CatEngine
from engine.errors import ConfigurationError, EngineError
from engine.pool import SkillTables
from engine.state import STOP_REASONS
from engine.strategies import Choice, SympsonHetter
from irt.kernels import eap_on_grid

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Per simulee and skill outcomes of a study (arrays are ``(n_simulees, n_skills)``).

    ``items[p, j]`` is the bank position of simulee ``p``'s ``j``-th scored item (−1 after the
    end), ``responses`` the answers and ``theta_path`` the EAP θ of the item's skill after it.
    """

    person_ids: tuple[str, ...]
    skills: tuple[str, ...]
    theta_true: NDArray[np.float64]
    theta_hat: NDArray[np.float64]
    se: NDArray[np.float64]
    n_items: NDArray[np.int64]
    stop_reason: tuple[str, ...]
    items: NDArray[np.int64]
    responses: NDArray[np.int64]
    theta_path: NDArray[np.float64]
    n_bank_items: int
    eligible: NDArray[np.bool_]  # (n_bank_items,) items the blueprint could select
    #: ``'pass'``/``'fail'`` per simulee and classified skill ('' when not classified);
    #: ``decided`` False where the rule had not decided and θ̂ was compared with the cut.
    decision: NDArray[np.str_] | None = None
    decided: NDArray[np.bool_] | None = None
    #: Final posterior covariance of the skills' θ per simulee ``(n, S, S)`` (diagonal when
    #: skills are scored separately); what an overall (composite) score's SE needs.
    cov: NDArray[np.float64] | None = None

    @property
    def test_length(self) -> NDArray[np.int64]:
        """Scored items per simulee over all skills."""
        return self.n_items.sum(axis=1)

    def exposure_counts(self) -> NDArray[np.int64]:
        it = self.items[self.items >= 0]
        return np.bincount(it, minlength=self.n_bank_items)

    def exposure_rates(self) -> NDArray[np.float64]:
        """Share of simulees who saw each item of the bank."""
        return self.exposure_counts() / max(len(self.person_ids), 1)


@dataclass(frozen=True)
class DecileRow:
    """Bias and RMSE of θ̂ among simulees whose true θ is in one decile."""

    skill: str
    decile: int
    theta_low: float
    theta_high: float
    n: int
    bias: float
    rmse: float


@dataclass(frozen=True)
class SkillSummary:
    skill: str
    bias: float
    rmse: float
    correlation: float
    mean_items: float


@dataclass(frozen=True)
class SimulationSummary:
    """Study statistics: accuracy per skill, test length, exposure, overlap, unused items."""

    n_simulees: int
    skills: tuple[SkillSummary, ...]
    mean_length: float
    min_length: int
    max_length: int
    deciles: tuple[DecileRow, ...]
    max_exposure: float
    mean_exposure: float
    overlap_rate: float
    unused_share: float
    stop_reasons: tuple[tuple[str, int], ...]


def summarize(result: SimulationResult) -> SimulationSummary:
    """Summary statistics of a study.

    Test overlap is the mean share of items two simulees have in common,
    ``Σ_i k_i (k_i − 1) / (N (N − 1) L̄)`` with ``k_i`` the number of simulees who saw item ``i``
    and ``L̄`` the mean test length (Chen, Ankenmann & Spray 2003). Exposure statistics are over
    the items the blueprint could select.
    """
    n = len(result.person_ids)
    if n == 0:
        raise EngineError("no simulees to summarize")
    skills = []
    deciles = []
    for k, s in enumerate(result.skills):
        t, h = result.theta_true[:, k], result.theta_hat[:, k]
        err = h - t
        corr = float(np.corrcoef(t, h)[0, 1]) if n > 2 and np.std(t) > 0 and np.std(h) > 0 \
            else float("nan")
        skills.append(SkillSummary(s, float(err.mean()), float(np.sqrt(np.mean(err**2))), corr,
                                   float(result.n_items[:, k].mean())))
        edges = np.quantile(t, np.linspace(0, 1, 11))
        which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, 9)
        for d in range(10):
            sel = which == d
            if sel.any():
                e = err[sel]
                deciles.append(DecileRow(s, d + 1, float(edges[d]), float(edges[d + 1]),
                                         int(sel.sum()), float(e.mean()),
                                         float(np.sqrt(np.mean(e**2)))))
    length = result.test_length
    counts = result.exposure_counts()[result.eligible]
    rates = counts / n
    mean_len = float(length.mean())
    overlap = float(np.sum(counts * (counts - 1.0)) / (n * (n - 1) * mean_len)) \
        if n > 1 and mean_len > 0 else float("nan")
    reasons = tuple((r, int(sum(1 for x in result.stop_reason if x == r)))
                    for r in STOP_REASONS if r in result.stop_reason)
    return SimulationSummary(
        n_simulees=n, skills=tuple(skills), mean_length=mean_len, min_length=int(length.min()),
        max_length=int(length.max()), deciles=tuple(deciles),
        max_exposure=float(rates.max()) if rates.size else 0.0,
        mean_exposure=float(rates.mean()) if rates.size else 0.0,
        overlap_rate=overlap, unused_share=float(np.mean(counts == 0)) if counts.size else 0.0,
        stop_reasons=reasons)


def _theta_matrix(engine: CatEngine, theta: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(theta, dtype=float)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[1] not in (1, len(engine.skill_names)):
        raise EngineError(f"theta must be (n_simulees,) or (n_simulees, {len(engine.skill_names)}"
                          f") for skills {engine.skill_names}, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise EngineError("theta contains NaN or infinite values")
    if t.shape[1] == 1 and len(engine.skill_names) > 1:
        t = np.repeat(t, len(engine.skill_names), axis=1)
    return t


def draw_answers(engine: CatEngine, theta: ArrayLike, rng: np.random.Generator | int | None
                 ) -> NDArray[np.int8]:
    """Answers of every simulee to every item of the pool, drawn from the model at the
    simulee's true θ of the item's skill: ``(n_simulees, n_items)``."""
    t = _theta_matrix(engine, theta)
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    comp = engine.compiled
    out = np.zeros((t.shape[0], len(engine.pool)), dtype=np.int8)
    for k, s in enumerate(engine.skill_names):
        tab = comp.skills[s]
        out[:, tab.idx] = irt.simulate_responses(t[:, k], tab.bank, g)
    return out


def simulate(engine: CatEngine, theta: ArrayLike, *, answers: ArrayLike | None = None,
             seeds: Sequence[int] | None = None, rng: np.random.Generator | int | None = None,
             person_ids: Sequence[str] | None = None, chunk_size: int = 2000,
             progress: Callable[[int], None] | None = None,
             update_rates_every: int | None = None) -> SimulationResult:
    """Run the engine's blueprint for every simulee, all simulees advancing together.

    Parameters
    ----------
    engine : the pool and blueprint.
    theta : true abilities, ``(n,)`` (one skill or the same θ for all skills) or
        ``(n, n_skills)`` in ``engine.skill_names`` order.
    answers : pre-drawn answers ``(n, n_items)`` (category per item); default: drawn from the
        model with ``rng`` (`draw_answers`).
    seeds : session seed per simulee (default ``derive_seed(blueprint.seed, p)``); simulee ``p``
        then gets exactly what ``engine.start(seeds[p])`` driven with ``answers[p]`` gives.
    chunk_size : simulees per vectorized batch (bounds memory).
    progress : called with the number of simulees finished after each chunk.
    update_rates_every : if set, simulees are run in consecutive groups of this size and the
        pool's observed exposure rates (`ItemPool.exposure_rates`, used by `ExposureCap`) are
        updated after each group from the study so far, as a live system's statistics would be.
    """
    t = _theta_matrix(engine, theta)
    n = t.shape[0]
    n_items = len(engine.pool)
    if answers is None:
        answers = draw_answers(engine, t, rng)
    answers = np.asarray(answers)
    if answers.shape != (n, n_items):
        raise EngineError(f"answers must be (n_simulees, n_items) = ({n}, {n_items}), got "
                          f"{answers.shape}")
    if answers.dtype.kind not in "iu":
        raise EngineError("answers must be integer categories")
    bad = (answers < 0) | (answers >= engine.n_categories[None, :])
    if bad.any():
        p, i = np.argwhere(bad)[0]
        raise EngineError(f"answers row {p}: category {answers[p, i]} out of range for item "
                          f"{engine.pool.bank.item_ids[i]!r}")
    if seeds is None:
        seeds = [derive_seed(engine.blueprint.seed, p) for p in range(n)]
    seed_arr = np.array([int(s) for s in seeds], dtype=np.uint64)
    if seed_arr.shape != (n,):
        raise EngineError(f"need one seed per simulee ({n}), got {seed_arr.shape[0]}")
    ids = tuple(person_ids) if person_ids is not None else tuple(str(p + 1) for p in range(n))
    if len(ids) != n:
        raise EngineError(f"need one person id per simulee ({n}), got {len(ids)}")
    parts = []
    step = max(int(chunk_size), 1)
    if update_rates_every is not None:
        if update_rates_every < 1:
            raise EngineError("update_rates_every must be >= 1")
        step = min(step, int(update_rates_every))
    eng = engine
    seen = np.zeros(n_items)
    for start in range(0, n, step):
        sl = slice(start, min(start + step, n))
        w, stop, path = eng.run(answers[sl], seed_arr[sl])
        parts.append((w, stop, path))
        if update_rates_every is not None:
            given = w.items[w.items >= 0]
            seen += np.bincount(given, minlength=n_items)
            ids_ = engine.pool.bank.item_ids
            rates = {ids_[i]: float(seen[i] / sl.stop) for i in np.flatnonzero(seen)}
            eng = CatEngine(replace(engine.pool, exposure_rates=rates), engine.blueprint)
        if progress is not None:
            progress(sl.stop - sl.start)
    k = len(engine.skill_names)
    L = engine.blueprint.max_items

    def cat(get, shape, dt):
        return (np.concatenate([get(*p) for p in parts]) if parts
                else np.zeros(shape, dtype=dt))

    counts = cat(lambda w, s, p: w.counts, (0, k), np.int64)
    none_given = counts == 0
    if engine.scorer.borrows:
        none_given &= (counts.sum(axis=1) == 0)[:, None]
    theta_hat = np.where(none_given, engine.prior_mean, cat(lambda w, s, p: w.theta, (0, k), float))
    se = np.where(none_given, engine.prior_sd, cat(lambda w, s, p: w.se, (0, k), float))
    verdict = cat(lambda w, s, p: w.verdict, (0, k), np.int8)
    cls = engine.classification
    cuts = np.array([np.nan if cls is None or (c := cls.cut_for(s)) is None else c
                     for s in engine.skill_names])
    decision = np.where(verdict == 1, "pass", np.where(verdict == 2, "fail", np.where(
        np.isnan(cuts), "", np.where(theta_hat >= cuts, "pass", "fail"))))
    return SimulationResult(
        person_ids=ids, skills=engine.skill_names, theta_true=t, theta_hat=theta_hat, se=se,
        n_items=counts, stop_reason=tuple(STOP_REASONS[c] for c in cat(
            lambda w, s, p: s, (0,), np.int64)),
        items=cat(lambda w, s, p: w.items, (0, L), np.int64),
        responses=cat(lambda w, s, p: w.responses, (0, L), np.int64),
        theta_path=cat(lambda w, s, p: p, (0, L), float), n_bank_items=n_items,
        eligible=~engine.base_excluded, decision=decision, decided=verdict > 0,
        cov=cat(lambda w, s, p: w.cov, (0, k, k), float))


def concat_results(parts: Sequence[SimulationResult]) -> SimulationResult:
    """Stack the results of disjoint groups of simulees of the same engine (e.g. from worker
    processes) into one result, in the given order."""
    if not parts:
        raise EngineError("no results to concatenate")
    first = parts[0]
    width = max(p.items.shape[1] for p in parts)

    def pad(a: NDArray, fill) -> NDArray:
        out = np.full((a.shape[0], width), fill, dtype=a.dtype)
        out[:, : a.shape[1]] = a
        return out

    def cat(name: str):
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return SimulationResult(
        person_ids=tuple(i for p in parts for i in p.person_ids), skills=first.skills,
        theta_true=cat("theta_true"), theta_hat=cat("theta_hat"), se=cat("se"),
        n_items=cat("n_items"), stop_reason=tuple(r for p in parts for r in p.stop_reason),
        items=np.concatenate([pad(p.items, -1) for p in parts]),
        responses=np.concatenate([pad(p.responses, -1) for p in parts]),
        theta_path=np.concatenate([pad(p.theta_path, np.nan) for p in parts]),
        n_bank_items=first.n_bank_items, eligible=first.eligible, decision=cat("decision"),
        decided=cat("decided"), cov=cat("cov"))


def simulate_fixed_form(engine: CatEngine, theta: ArrayLike, length: int, *,
                        answers: ArrayLike | None = None,
                        rng: np.random.Generator | int | None = None,
                        person_ids: Sequence[str] | None = None) -> SimulationResult:
    """The fixed-form comparison: one random form of ``length`` eligible items (spread over the
    skills by their target shares), given to every simulee and scored by EAP on the same grid.
    """
    t = _theta_matrix(engine, theta)
    n = t.shape[0]
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if answers is None:
        answers = draw_answers(engine, t, g)
    answers = np.asarray(answers)
    if length < 1:
        raise ConfigurationError("fixed-form length must be >= 1")
    names = engine.skill_names
    quota = np.floor(engine.share * length).astype(int)
    quota[: length - quota.sum()] += 1
    form: list[int] = []
    counts = np.zeros((n, len(names)), dtype=np.int64)
    theta_hat = np.zeros((n, len(names)))
    se = np.zeros((n, len(names)))
    for k, s in enumerate(names):
        tab = engine.tables[k]
        pool = tab.idx[~engine.base_excluded[tab.idx]]
        if quota[k] > pool.size:
            raise ConfigurationError(f"skill {s!r} has {pool.size} eligible items, the fixed "
                                     f"form needs {quota[k]}")
        pick = np.sort(g.choice(pool, quota[k], replace=False))
        form.extend(pick.tolist())
        lp = engine.prior_log[k][None, :] + engine.compiled.log_p[pick[None, :],
                                                                   answers[:, pick]].sum(axis=1)
        th, sd = eap_on_grid(lp, engine.nodes)
        theta_hat[:, k], se[:, k], counts[:, k] = th, sd, quota[k]
    form_arr = np.array(form, dtype=np.int64)
    L = max(engine.blueprint.max_items, length)
    items = np.full((n, L), -1, dtype=np.int64)
    items[:, :length] = form_arr
    resp = np.full((n, L), -1, dtype=np.int64)
    resp[:, :length] = answers[:, form_arr]
    ids = tuple(person_ids) if person_ids is not None else tuple(str(p + 1) for p in range(n))
    cov = np.zeros((n, len(names), len(names)))
    cov[:, np.arange(len(names)), np.arange(len(names))] = se**2
    return SimulationResult(ids, names, t, theta_hat, se, counts, ("max_items",) * n, items,
                            resp, np.full((n, L), np.nan), len(engine.pool),
                            ~engine.base_excluded, cov=cov)


@dataclass(frozen=True)
class SympsonHetterTuning:
    """Outcome of `tune_sympson_hetter`: the control, and per iteration the maximum observed
    administration rate."""

    control: SympsonHetter
    max_exposure: tuple[float, ...]
    converged: bool


def tune_sympson_hetter(engine: CatEngine,
                        theta: ArrayLike | Callable[[np.random.Generator], ArrayLike],
                        r_max: float = 0.25, *, burn_in: int = 8, n_average: int = 8,
                        tol: float = 0.015,
                        rng: np.random.Generator | int | None = 0) -> SympsonHetterTuning:
    """Sympson–Hetter exposure parameters by iterative simulation (Sympson & Hetter 1985).

    Each round simulates the simulees ``theta`` (fresh answers and seeds) with the current
    parameters ``K``, counts how often each item was selected (reached while walking down the
    ranking; once per simulee), ``P(S_i)``, and sets ``K_i = 1`` if ``P(S_i) ≤ r_max`` else
    ``r_max / P(S_i)``. After ``burn_in`` rounds the iterates fluctuate around the fixed point
    by sampling noise only; the selection rates of the next ``n_average`` rounds are averaged
    (Polyak & Juditsky 1992) and give the final ``K``, and ``converged`` tells whether the
    administration rates, averaged over those rounds, stay within ``r_max + tol``.

    ``theta`` is the simulee sample, or a function drawing a fresh sample from a generator each
    round (recommended: a fixed sample lets ``K`` adapt to that sample's θ values). The engine's
    own exposure control is replaced by Sympson–Hetter during tuning (keeping its
    ``progressive`` setting when it is Sympson–Hetter already).
    """
    if not 0 < r_max <= 1:
        raise ConfigurationError("r_max must be in (0, 1]")
    if burn_in < 1 or n_average < 1:
        raise ConfigurationError("burn_in and n_average must be >= 1")
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    draw = theta if callable(theta) else None
    fixed = None if callable(theta) else _theta_matrix(engine, theta)
    ids = engine.pool.bank.item_ids
    own = engine.blueprint.exposure
    progressive = own.progressive if isinstance(own, SympsonHetter) else 0
    eligible = ~engine.base_excluded
    k = np.ones(len(engine.pool))
    p_sum = np.zeros(len(engine.pool))
    a_sum = np.zeros(len(engine.pool))
    history = []
    for it in range(burn_in + n_average):
        t = _theta_matrix(engine, draw(g)) if draw is not None else fixed
        assert t is not None
        n = t.shape[0]
        control = _control(ids, k, progressive)
        tried = np.zeros((n, len(engine.pool)), dtype=bool)
        answers = draw_answers(engine, t, g)
        seeds = np.asarray(g.choice(2**62, size=n, replace=False)).tolist()
        row_of_seed = {s: p for p, s in enumerate(seeds)}
        eng = CatEngine(engine.pool, replace(
            engine.blueprint, exposure=_TriedCounter(control, tried, row_of_seed)))
        admin = simulate(eng, t, answers=answers, seeds=seeds).exposure_rates()
        history.append(float(admin[eligible].max()))
        log.debug("Sympson-Hetter round %d: max exposure %.3f", it + 1, history[-1])
        p_sel = tried.sum(axis=0) / n
        k = _sh_update(p_sel, r_max)
        if it >= burn_in:
            p_sum += p_sel
            a_sum += admin
    averaged = a_sum / n_average
    converged = bool(averaged[eligible].max() <= r_max + tol)
    # K from the averaged selection rates (averaging r/P(S) itself would be biased upwards,
    # 1/x being convex)
    return SympsonHetterTuning(_control(ids, _sh_update(p_sum / n_average, r_max), progressive),
                               tuple(history), converged)


def _sh_update(p_sel: NDArray[np.float64], r_max: float) -> NDArray[np.float64]:
    return np.where(p_sel <= r_max, 1.0, r_max / np.maximum(p_sel, 1e-12))


def _control(ids: Sequence[str], k: NDArray[np.float64], progressive: int = 0
             ) -> SympsonHetter:
    return SympsonHetter({ids[i]: float(k[i]) for i in np.flatnonzero(k < 1.0).tolist()},
                         progressive)


class _TriedCounter(SympsonHetter):
    """Sympson–Hetter that also marks, per simulee, the items it tried (tuning only)."""

    _tried: NDArray[np.bool_]
    _row_of_seed: dict[int, int]

    def __init__(self, control: SympsonHetter, tried: NDArray[np.bool_],
                 row_of_seed: dict[int, int]) -> None:
        object.__setattr__(self, "parameters", control.parameters)
        object.__setattr__(self, "progressive", control.progressive)
        object.__setattr__(self, "_tried", tried)
        object.__setattr__(self, "_row_of_seed", row_of_seed)

    def choose(self, crit: NDArray[np.float64], tables: SkillTables, seeds: NDArray[np.uint64],
               steps: NDArray[np.int64], prepared: Any, draws: Any = None,
               tried: bool = True) -> Choice:
        choice = super().choose(crit, tables, seeds, steps, prepared, draws, tried=True)
        assert choice.tried is not None and choice.tried_rows is not None
        sim = np.array([self._row_of_seed[int(s)] for s in seeds])
        self._tried[sim[choice.tried_rows], choice.tried] = True
        return choice


__all__ = ["DecileRow", "SimulationResult", "SimulationSummary", "SkillSummary",
           "SympsonHetterTuning", "concat_results", "draw_answers", "simulate",
           "simulate_fixed_form", "summarize", "tune_sympson_hetter"]
