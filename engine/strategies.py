"""CAT strategies: starting θ, item selection and exposure control, each a small frozen class.

Every strategy is a value: it round-trips through ``to_dict()`` / `strategy_from_dict` by the
``name`` it is registered under, so a stored test configuration rebuilds the same strategies.
Selectors return a criterion per candidate item (larger is better); exposure controls turn the
criteria into one choice. Both work on ``(n_sessions, n_items_of_the_skill)`` arrays, so the live
engine (one session) and the batch simulator (many) run the same arithmetic.

References: Lord (1980) for maximum information; Chang & Ying (1996) for Kullback–Leibler
selection; van der Linden (1998) for posterior-weighted information; van der Linden (1999) and
Mulder & van der Linden (2009) for c-optimality (the composite's error variance); Urry (1977)
for b-matching; Chang & Ying (1999) for a-stratification; Kingsbury & Zara (1989) for
randomesque selection; Sympson & Hetter (1985) for probabilistic exposure control; Revuelta &
Ponsoda (1998) for the progressive method.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from engine._rng import SALT_PROGRESSIVE, SALT_RANDOMESQUE, SALT_SYMPSON_HETTER, uniform_array
from engine.errors import ConfigurationError
from engine.pool import PROB_FLOOR, ItemPool, SkillTables
from irt.composite import composite_variance_reduction

#: Penalty per stratum of distance in a-stratified selection (dominates any |b − θ|).
STRATUM_PENALTY = 1000.0
#: Number of Simpson nodes (odd) for the Kullback–Leibler integral.
KL_POINTS = 9

#: The roles of a blueprint; each maps registered names to strategy classes.
REGISTRY: dict[str, dict[str, type[Strategy]]] = {
    k: {} for k in ("start", "scorer", "selector", "exposure", "balancer", "pretest", "stopper")}

_S = TypeVar("_S", bound="type[Strategy]")


def register(kind: str) -> Callable[[_S], _S]:
    """Class decorator: register a strategy under its ``name`` for the role ``kind``."""
    def deco(cls: _S) -> _S:
        REGISTRY[kind][cls.name] = cls
        return cls
    return deco


class Strategy:
    """Common serialization of the strategy dataclasses."""

    name: ClassVar[str]
    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        assert dataclasses.is_dataclass(self)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = (dict(v) if isinstance(v, Mapping)
                           else list(v) if isinstance(v, tuple) else v)
        return out


def strategy_from_dict(kind: str, data: Mapping[str, Any]) -> Any:
    """Rebuild a strategy of role ``kind`` (a key of `REGISTRY`) from its `to_dict`."""
    if kind not in REGISTRY:
        raise ConfigurationError(f"unknown strategy kind {kind!r}")
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigurationError(f"{kind}: expected an object with a 'name', got {data!r}")
    cls = REGISTRY[kind].get(data["name"])
    if cls is None:
        raise ConfigurationError(f"{kind}: unknown name {data['name']!r}; expected one of "
                                 f"{sorted(REGISTRY[kind])}")
    params = {k: v for k, v in data.items() if k != "name"}
    assert dataclasses.is_dataclass(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - names
    if unknown:
        raise ConfigurationError(f"{kind} {data['name']!r}: unknown setting(s) {sorted(unknown)}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigurationError(f"{kind} {data['name']!r}: {exc}") from None


def _per_skill(value: float | Mapping[str, float], skill: str, default: float) -> float:
    if isinstance(value, Mapping):
        return float(value.get(skill, default))
    return float(value)


# --------------------------------------------------------------------------- starting rules

class Starter(Strategy):
    kind: ClassVar[str] = "start"

    def start_theta(self, skill: str) -> float:
        raise NotImplementedError

    def prior(self, skill: str) -> tuple[float, float]:
        raise NotImplementedError


@register("start")
@dataclass(frozen=True)
class FixedStart(Starter):
    """Select the first item of every skill at ``theta``; EAP prior N(prior_mean, prior_sd²)."""

    name: ClassVar[str] = "fixed"
    theta: float = 0.0
    prior_mean: float = 0.0
    prior_sd: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.theta) or not math.isfinite(self.prior_mean):
            raise ConfigurationError("start: theta and prior_mean must be finite")
        if not self.prior_sd > 0:
            raise ConfigurationError(f"start: prior_sd must be > 0, got {self.prior_sd}")

    def start_theta(self, skill: str) -> float:
        return float(self.theta)

    def prior(self, skill: str) -> tuple[float, float]:
        return float(self.prior_mean), float(self.prior_sd)


@register("start")
@dataclass(frozen=True)
class PriorStart(Starter):
    """Start each skill at its prior mean; ``mean``/``sd`` are one value or skill → value."""

    name: ClassVar[str] = "prior"
    mean: float | Mapping[str, float] = 0.0
    sd: float | Mapping[str, float] = 1.0

    def __post_init__(self) -> None:
        sds = self.sd.values() if isinstance(self.sd, Mapping) else [self.sd]
        means = self.mean.values() if isinstance(self.mean, Mapping) else [self.mean]
        if any(not float(s) > 0 for s in sds) or any(not math.isfinite(float(m)) for m in means):
            raise ConfigurationError("start: prior means must be finite and SDs > 0")

    def start_theta(self, skill: str) -> float:
        return _per_skill(self.mean, skill, 0.0)

    def prior(self, skill: str) -> tuple[float, float]:
        return _per_skill(self.mean, skill, 0.0), _per_skill(self.sd, skill, 1.0)


# --------------------------------------------------------------------------- selection rules

@dataclass(eq=False, slots=True)
class SelectionContext:
    """What a selector sees for ``n`` sessions in one skill.

    ``theta`` (n,) is the current estimate (the start θ before the skill's first response),
    ``variance`` (n,) its posterior variance, ``log_post`` (n, n_nodes) the unnormalized log
    posterior on ``nodes`` (None for scorers without a grid), ``n_given`` (n,) the number of
    scored items in the skill and ``skill_max`` the skill's maximum length. ``skill`` is the
    skill's position in the blueprint, ``cov_row`` (n, S) its row of the posterior covariance of
    all skills (None: not given) and ``prepared`` what the blueprint's selector computed once
    per engine (`Selector.prepare`).

    In a bank-wide context (`Selector.item_wise` selectors; ``skill`` −1) ``tables`` covers the
    bank and ``theta``, ``variance`` and ``n_given`` are ``(n, m)``: each item sees its own
    skill's values (`column` reads either form per item); ``cov_row`` is then every skill's row
    ``(n, S, S)`` and ``item_skill`` ``(m,)`` the row of each item.
    """

    tables: SkillTables
    theta: NDArray[np.float64]
    variance: NDArray[np.float64]
    log_post: NDArray[np.float64] | None
    n_given: NDArray[np.int64]
    skill_max: int
    nodes: NDArray[np.float64]
    skill: int = 0
    cov_row: NDArray[np.float64] | None = None
    prepared: Any = None
    item_skill: NDArray[np.int64] | None = None

    @staticmethod
    def column(values: NDArray[Any]) -> NDArray[Any]:
        """Per-session ``values`` ``(n,)`` as a column against the items, or per-item values
        ``(n, m)`` as they are."""
        return values[:, None] if values.ndim == 1 else values


class Selector(Strategy):
    kind: ClassVar[str] = "selector"
    #: True for selectors that plan the whole remaining test (`plan`), not one skill's item.
    plans_test: ClassVar[bool] = False
    #: True when an item's criterion depends only on the item and its own skill's values (read
    #: through `SelectionContext.column`), so skills that compete are scored in one bank-wide
    #: context; the same numbers as one context per skill.
    item_wise: ClassVar[bool] = False

    def rule(self, n_given: int) -> str:
        """The rule applied when ``n_given`` items of the skill are scored (for the audit)."""
        return self.name

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        """Per session and item of the skill, larger is better: ``(n, m)``."""
        raise ConfigurationError(f"the {self.name!r} selector has no per-item criterion (it "
                                 f"plans the whole test)")

    def split(self, n_given: NDArray[np.int64]
              ) -> list[tuple[NDArray[np.bool_] | None, Selector]]:
        """The selector applied to each group of sessions (by items given in the skill;
        None: every session)."""
        return [(None, self)]

    def prepare(self, eng: Any) -> Any:
        """Per-engine data the selector needs (computed once per engine)."""
        return None

    def plan(self, eng: Any, prepared: Any, w: Any, rows: slice | NDArray[np.int64]
             ) -> NDArray[np.bool_]:
        """For selectors that plan the whole test (``plans_test``): per row, the free items of
        the planned test, ``(n, n_bank_items)``."""
        raise NotImplementedError


@register("selector")
@dataclass(frozen=True)
class MaxInfo(Selector):
    """Maximum Fisher information at the current θ̂: ``argmax_i I_i(θ̂)`` (Lord 1980)."""

    name: ClassVar[str] = "mfi"
    item_wise: ClassVar[bool] = True

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        return ctx.tables.information(ctx.theta)


@register("selector")
@dataclass(frozen=True)
class KLInfo(Selector):
    """Kullback–Leibler information over a shrinking interval (Chang & Ying 1996).

    ``KL_i(θ̂) = ∫_{θ̂−δ}^{θ̂+δ} Σ_k P_ik(θ̂) log(P_ik(θ̂)/P_ik(θ)) dθ`` with ``δ = width/√n``
    (``n`` = items scored in the skill, at least 1), by Simpson's rule on 9 nodes. After
    ``switch_after`` items of the skill, selection switches to maximum Fisher information.
    """

    name: ClassVar[str] = "kl"
    width: float = 3.0
    switch_after: int = 5

    def __post_init__(self) -> None:
        if not self.width > 0 or self.switch_after < 0:
            raise ConfigurationError("kl: width must be > 0 and switch_after >= 0")

    def rule(self, n_given: int) -> str:
        return "kl" if n_given < self.switch_after else "mfi"

    def split(self, n_given: NDArray[np.int64]
              ) -> list[tuple[NDArray[np.bool_] | None, Selector]]:
        early = n_given < self.switch_after
        return [(early, self), (~early, MaxInfo())]

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        n = ctx.theta.shape[0]
        delta = self.width / np.sqrt(np.maximum(ctx.n_given, 1).astype(float))
        offsets = np.linspace(-1.0, 1.0, KL_POINTS)
        pts = (ctx.theta[:, None] + delta[:, None] * offsets).ravel()
        p0 = np.clip(ctx.tables.category_probabilities(ctx.theta), PROB_FLOOR, 1.0)
        p = np.clip(ctx.tables.category_probabilities(pts), PROB_FLOOR, 1.0)
        m = p0.shape[1]
        p = p.reshape(n, KL_POINTS, m, -1)
        kl = np.sum(p0[:, None] * (np.log(p0)[:, None] - np.log(p)), axis=-1)  # (n, pts, m)
        w = np.where(np.arange(KL_POINTS) % 2 == 1, 4.0, 2.0)  # Simpson: 1 4 2 4 … 4 1
        w[0] = w[-1] = 1.0
        h = 2.0 * delta / (KL_POINTS - 1) / 3.0
        return np.sum(kl * w[None, :, None], axis=1) * h[:, None]


@register("selector")
@dataclass(frozen=True)
class PosteriorWeightedInfo(Selector):
    """Maximum posterior-weighted information ``∫ I_i(θ) p(θ | x) dθ`` (van der Linden 1998)."""

    name: ClassVar[str] = "mpwi"

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        lp = ctx.log_post
        if lp is None:
            raise ConfigurationError("mpwi needs a scorer with a posterior on a grid (eap)")
        w = np.exp(lp - lp.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        grid = ctx.tables.info_grid
        out = np.empty((lp.shape[0], grid.shape[1]))
        for j in range(lp.shape[0]):  # one gemv per row: identical for 1 or n sessions
            out[j] = w[j] @ grid
        return out


@register("selector")
@dataclass(frozen=True)
class DOptimal(Selector):
    """D-optimality under a correlated posterior (Segall 1996; Mulder & van der Linden 2009).

    Giving item ``i`` of skill ``s`` adds ``I_i(θ̂_s) e_s e_sᵀ`` to the posterior information
    ``P = C⁻¹``; by the matrix determinant lemma ``det(P + I_i e_s e_sᵀ) = det(P)(1 + I_i C_ss)``,
    so the criterion is ``I_i(θ̂_s) · C_ss``. Within one skill it ranks like maximum information;
    with the ``open`` balancer the skills compete by their posterior variance.
    """

    name: ClassVar[str] = "d_optimal"
    item_wise: ClassVar[bool] = True

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        return ctx.tables.information(ctx.theta) * ctx.column(ctx.variance)


@register("selector")
@dataclass(frozen=True)
class COptimal(Selector):
    """c-optimality for the overall score: the item that most reduces the posterior variance
    of the weighted composite ``wᵀθ`` (van der Linden 1999; Mulder & van der Linden 2009).

    With ``C`` the posterior covariance of the skills and item i of skill s informing only θ_s
    (information ``I_i(θ̂_s)``), the criterion is the exact one-step reduction (Sherman–Morrison;
    `irt.composite.composite_variance_reduction`) ::

        Var(wᵀθ) − Var'(wᵀθ) = (C w)_s² · I_i(θ̂_s) / (1 + C_ss · I_i(θ̂_s))

    so the test goes where the stopping rule on the overall SE (`engine.rules.CompositeSE`)
    gains most. Within one skill it ranks items like maximum information; its effect is across
    skills, so use it with a balancer that lets skills compete (``open``, ``minimums_first``).
    Under the MAP scorer ``C`` is the Laplace covariance of the correlated prior, so a skill
    correlated with poorly measured others gains as well; under per-skill EAP ``C`` is diagonal
    and ``(C w)_s = w_s C_ss``.

    ``weights`` maps skills to composite weights (unlisted skills weigh 0); empty: the weights
    of the blueprint's composite stopping rule, or equal weights without one.

    References: van der Linden, W. J. (1999), Multidimensional adaptive testing with a minimum
    error-variance criterion, JEBS 24(4), 398–412; Mulder, J. & van der Linden, W. J. (2009),
    Multidimensional adaptive testing with optimal design criteria for item selection,
    Psychometrika 74(2), 273–296.
    """

    name: ClassVar[str] = "c_optimal"
    item_wise: ClassVar[bool] = True
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s, v in dict(self.weights).items():
            if not (isinstance(v, int | float) and math.isfinite(v)):
                raise ConfigurationError(f"c_optimal: weight of {s!r} must be a finite number")
        object.__setattr__(self, "weights", {str(k): float(v) for k, v in self.weights.items()})

    def prepare(self, eng: Any) -> NDArray[np.float64]:
        """The composite weights over the engine's skills, in their order."""
        names = list(eng.skill_names)
        if self.weights:
            unknown = set(self.weights) - set(names)
            if unknown:
                raise ConfigurationError(f"c_optimal: unknown skill(s) {sorted(unknown)}; the "
                                         f"blueprint's skills are {names}")
            wv = np.array([self.weights.get(s, 0.0) for s in names])
            if not np.any(wv != 0):
                raise ConfigurationError("c_optimal: every weight is 0")
            return wv
        for st, prep in zip(eng.stoppers, eng.stop_prepared, strict=True):
            if st.name == "composite":  # `engine.rules.CompositeSE`: its weight vector
                return np.asarray(prep[0], dtype=np.float64)
        return np.full(len(names), 1.0 / len(names))

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        info = ctx.tables.information(ctx.theta)
        if ctx.cov_row is None or ctx.prepared is None:
            raise ConfigurationError("c_optimal needs the engine's covariance row and weights")
        # (C w)_s row by row (no BLAS: identical for one session or many, per skill or bank)
        cov_w = np.add.reduce(ctx.cov_row * ctx.prepared, axis=-1)
        if ctx.item_skill is not None:  # every skill's (C w)_s, read per item
            cov_w = cov_w[:, ctx.item_skill]
        return composite_variance_reduction(ctx.column(cov_w), ctx.column(ctx.variance), info)


@register("selector")
@dataclass(frozen=True)
class BMatching(Selector):
    """Difficulty closest to θ̂: criterion ``−|b_i − θ̂|`` (Urry 1977); polytomous items use the
    mean of their thresholds."""

    name: ClassVar[str] = "bmatch"
    item_wise: ClassVar[bool] = True

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        return -np.abs(ctx.tables.b - ctx.column(ctx.theta))


@register("selector")
@dataclass(frozen=True)
class AStratified(Selector):
    """a-stratified b-matching (Chang & Ying 1999).

    The skill's items are split into ``n_strata`` strata of ascending discrimination; stage
    ``s = ⌊n_given · n_strata / skill_max⌋`` draws from stratum ``s`` by b-matching, so the most
    discriminating items are kept for late in the test when θ̂ is precise. An exhausted stratum
    falls through to the nearest non-empty one.
    """

    name: ClassVar[str] = "astrat"
    n_strata: int = 4

    def __post_init__(self) -> None:
        if self.n_strata < 1:
            raise ConfigurationError("astrat: n_strata must be >= 1")

    def strata(self, tables: SkillTables) -> NDArray[np.int64]:
        def compute() -> NDArray[np.int64]:
            m = len(tables)
            order = np.argsort(tables.a, kind="stable")
            s = np.empty(m, dtype=np.int64)
            s[order] = np.arange(m) * self.n_strata // max(m, 1)
            return s
        return tables.cached(("strata", self.n_strata), compute)

    def criterion(self, ctx: SelectionContext) -> NDArray[np.float64]:
        strata = self.strata(ctx.tables)
        stage = np.minimum(ctx.n_given * self.n_strata // max(ctx.skill_max, 1),
                           self.n_strata - 1)
        return (-np.abs(ctx.tables.b - ctx.theta[:, None])
                - STRATUM_PENALTY * np.abs(strata - stage[:, None]))


# --------------------------------------------------------------------------- exposure control

@dataclass(eq=False, slots=True)
class Choice:
    """Chosen column per session, its rank among the candidates (1 = best criterion)."""

    column: NDArray[np.int64]
    rank: NDArray[np.int64]
    #: Bank positions of every item tried on the way (Sympson–Hetter), for tuning.
    tried: NDArray[np.int64] | None = None
    #: The row of each entry of ``tried``.
    tried_rows: NDArray[np.int64] | None = None


class ExposureControl(Strategy):
    kind: ClassVar[str] = "exposure"

    def prepare(self, pool: ItemPool) -> Any:
        """Per-pool arrays the control needs (computed once per engine)."""
        return None

    def draws(self, seeds: NDArray[np.uint64], prepared: Any) -> NDArray[np.bool_] | None:
        """Per-session values over the bank that are fixed for a whole session, computed once
        when its working arrays are built (`engine.rules.Work.draws`); ``choose`` gets the
        rows' ``draws``. None: the control has none."""
        return None

    def choose(self, crit: NDArray[np.float64], tables: SkillTables, seeds: NDArray[np.uint64],
               steps: NDArray[np.int64], prepared: Any, draws: Any = None) -> Choice:
        """Pick one column per row of ``crit`` (``−inf`` marks unavailable items; every row has
        at least one available item); ``draws`` are the rows' `draws` (or None)."""
        raise NotImplementedError


def _best(crit: NDArray[np.float64]) -> Choice:
    col = crit.argmax(axis=1)
    return Choice(col, np.zeros(crit.shape[0], dtype=np.int64) + 1)  # rank 1 (np.ones is slower)


def _ranking(crit: NDArray[np.float64]) -> NDArray[np.int64]:
    # stable: ties keep bank order, the same for a skill's columns alone or within the bank
    return np.argsort(-crit, axis=1, kind="stable")


@register("exposure")
@dataclass(frozen=True)
class NoExposureControl(ExposureControl):
    """Always the best criterion."""

    name: ClassVar[str] = "none"

    def choose(self, crit: NDArray[np.float64], tables: SkillTables, seeds: NDArray[np.uint64],
               steps: NDArray[np.int64], prepared: Any, draws: Any = None) -> Choice:
        return _best(crit)


@register("exposure")
@dataclass(frozen=True)
class Randomesque(ExposureControl):
    """Choose uniformly among the ``k`` best available items (Kingsbury & Zara 1989)."""

    name: ClassVar[str] = "randomesque"
    k: int = 5

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigurationError("randomesque: k must be >= 1")

    def choose(self, crit: NDArray[np.float64], tables: SkillTables, seeds: NDArray[np.uint64],
               steps: NDArray[np.int64], prepared: Any, draws: Any = None) -> Choice:
        if self.k == 1:
            return _best(crit)
        order = _ranking(crit)[:, : self.k]
        n_avail = np.isfinite(crit).sum(axis=1)
        k_eff = np.minimum(self.k, n_avail)
        u = uniform_array(seeds, steps, SALT_RANDOMESQUE)
        pick = np.minimum((u * k_eff).astype(np.int64), k_eff - 1)
        rows = np.arange(crit.shape[0])
        return Choice(order[rows, pick], pick + 1)


@register("exposure")
@dataclass(frozen=True)
class SympsonHetter(ExposureControl):
    """Sympson–Hetter (1985): walk down the ranking, administer item i with probability K_i.

    The draw for an item is fixed per session (it does not depend on the step), so an item
    rejected once stays rejected for the rest of the session, as in the original procedure,
    without the state having to remember it.
    ``parameters`` maps item id → K_i in (0, 1] (missing ids: 1). Tune them with
    `engine.simulation.tune_sympson_hetter` so that ``P(A_i) = P(S_i) K_i ≤ r_max``. If every
    available item is rejected, the best one is given.

    ``progressive`` > 0 adds the progressive method (Revuelta & Ponsoda 1998) over the first
    ``progressive`` scored items: at position t (0-based) the ranking is by
    ``(1 − s)·R_i + s·crit_i`` with ``s = t / progressive`` and ``R_i`` uniform between the
    row's smallest and largest available criterion (a counter-based draw per session, step and
    item), so the first item is drawn uniformly from the available items and the criterion takes
    over linearly; from position ``progressive`` on the ranking is the criterion's.
    """

    name: ClassVar[str] = "sympson_hetter"
    parameters: Mapping[str, float] = field(default_factory=dict)
    progressive: int = 0

    def __post_init__(self) -> None:
        for iid, k in self.parameters.items():
            if not 0.0 < float(k) <= 1.0:
                raise ConfigurationError(f"sympson_hetter: item {iid!r} has K = {k}, expected "
                                         f"0 < K <= 1")
        if isinstance(self.progressive, bool) or not isinstance(self.progressive, int) \
                or self.progressive < 0:
            raise ConfigurationError(f"sympson_hetter: progressive must be an integer >= 0, "
                                     f"got {self.progressive!r}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.progressive:  # stored blueprints from before the option read back unchanged
            del out["progressive"]
        return out

    def prepare(self, pool: ItemPool) -> NDArray[np.float64]:
        k = np.ones(len(pool))
        for iid, v in self.parameters.items():
            # items retired or excluded since tuning are simply not in the pool any more
            if iid in pool:
                k[pool.index(iid)] = float(v)
        return k

    def draws(self, seeds: NDArray[np.uint64], prepared: Any) -> NDArray[np.bool_]:
        """Per session and bank item, whether the item passes its Sympson–Hetter experiment
        ``u < K_i``: the draw ``u`` is fixed per (session, item), so this is computed once per
        session."""
        u = uniform_array(seeds[:, None], np.zeros(1, dtype=np.int64), SALT_SYMPSON_HETTER,
                          np.arange(prepared.shape[0]))
        return u < prepared

    def choose(self, crit: NDArray[np.float64], tables: SkillTables, seeds: NDArray[np.uint64],
               steps: NDArray[np.int64], prepared: Any, draws: Any = None,
               tried: bool = False) -> Choice:
        """The first item of the ranking (criterion descending, ties in bank order) whose
        experiment passes, i.e. the best accepted item, without sorting; its rank is the
        number of items ranked ahead of it plus one. No accepted item: the best item (rank 1).
        ``tried``: also return every item walked past (tuning)."""
        if self.progressive:
            crit = progressive_criterion(crit, tables, seeds, steps, self.progressive)
        n, m = crit.shape
        if draws is None:  # working arrays built without the control's draws
            draws = self.draws(seeds, prepared)
        accept = draws if draws.shape[1] == m else draws[:, tables.idx]
        finite = crit > -np.inf
        accept = accept & finite
        col = np.where(accept, crit, -np.inf).argmax(axis=1)
        if n == 1 and not tried:  # one session: the same rank by scalar tests and two counts
            j = col.item(0)
            if not accept[0, j]:
                return Choice(crit.argmax(axis=1), np.ones(1, dtype=np.int64))
            best = crit.item(0, j)
            ahead = np.count_nonzero(crit > best) + np.count_nonzero(crit[0, :j] == best)
            return Choice(col, np.array([ahead + 1]))
        hits = accept[np.arange(n), col]
        if not hits.all():
            col = np.where(hits, col, crit.argmax(axis=1))
        chosen = crit[np.arange(n), col][:, None]
        cols = np.arange(m)
        ahead = (crit > chosen) | ((crit == chosen) & (cols < col[:, None]))
        rank = np.where(hits, np.add.reduce(ahead, axis=1) + 1, 1)
        if not tried:
            return Choice(col, rank)
        walked = np.where(hits[:, None], ahead | (cols == col[:, None]), finite)
        rows, at = np.nonzero(walked)
        return Choice(col, rank, tables.idx[at], rows)


def progressive_criterion(crit: NDArray[np.float64], tables: SkillTables,
                          seeds: NDArray[np.uint64], steps: NDArray[np.int64], horizon: int
                          ) -> NDArray[np.float64]:
    """The progressive method's ranking value (Revuelta & Ponsoda 1998):
    ``(1 − s)·R_i + s·crit_i`` with ``s = min(1, step / horizon)`` and ``R_i`` uniform on
    ``[min, max]`` of the row's available (finite) criteria; unavailable items stay ``−inf``.
    Rows at or past the horizon keep their criterion unchanged."""
    s = np.minimum(steps.astype(np.float64) / horizon, 1.0)
    early = s < 1.0
    if not some_rows(early):
        return crit
    finite = np.isfinite(crit)
    hi = np.max(np.where(finite, crit, -np.inf), axis=1)
    lo = np.min(np.where(finite, crit, np.inf), axis=1)
    span = np.where(np.isfinite(hi - lo), hi - lo, 0.0)
    u = uniform_array(seeds[:, None], steps[:, None], SALT_PROGRESSIVE, tables.idx[None, :])
    r = np.where(np.isfinite(lo), lo, 0.0)[:, None] + u * span[:, None]
    mixed = (1.0 - s)[:, None] * r + s[:, None] * np.where(finite, crit, 0.0)
    return np.where(finite & early[:, None], mixed, crit)


def some_rows(mask: NDArray[np.bool_]) -> bool:
    return bool(np.logical_or.reduce(mask)) if mask.size else False


@register("exposure")
@dataclass(frozen=True)
class ExposureCap(ExposureControl):
    """Hard cap: items whose observed exposure rate (`ItemPool.exposure_rates`) has reached
    ``max_rate`` are skipped; if that leaves nothing, the best item is given anyway."""

    name: ClassVar[str] = "cap"
    max_rate: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 < self.max_rate <= 1.0:
            raise ConfigurationError("cap: max_rate must be in (0, 1]")

    def prepare(self, pool: ItemPool) -> NDArray[np.bool_]:
        return pool.rates_array() >= self.max_rate

    def choose(self, crit: NDArray[np.float64], tables: SkillTables, seeds: NDArray[np.uint64],
               steps: NDArray[np.int64], prepared: Any, draws: Any = None) -> Choice:
        capped = np.where(prepared[tables.idx], -np.inf, crit)
        ok = np.isfinite(capped).any(axis=1)
        best_capped = np.argmax(capped, axis=1)
        best = np.argmax(crit, axis=1)
        col = np.where(ok, best_capped, best)
        rows = np.arange(crit.shape[0])
        rank = 1 + np.sum(crit > crit[rows, col][:, None], axis=1)
        return Choice(col, rank)
