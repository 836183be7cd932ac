"""Marginal maximum likelihood calibration by EM (Bock & Aitkin 1981), sparse end to end.

For each skill, θ ~ N(0, 1) is integrated on a fixed grid of ``Q`` nodes ``θ_q`` with weights
``w_q``. One EM cycle is:

* **E-step.** With ``Y`` the sparse one-hot response matrix (persons × items·K, one non-zero per
  response) and ``T`` the table ``log P_ik(θ_q)`` (items·K × Q),
  ``log L = Y T`` (persons × Q), the posterior ``π_pq ∝ L_pq w_q`` and the expected counts
  ``r_ikq = Σ_p y_p,ik π_pq = (Yᵀ π)_ik,q``. Both products cost ``n_responses × Q``; nothing of
  size persons × items is ever allocated. Dense dichotomous data take a BLAS path
  (``log L = X (log P − log Q)ᵀ + M log Qᵀ``) with the same result.
* **M-step.** For every item, maximise ``Σ_q Σ_k r_ikq log P_k(θ_q; φ_i) + log prior(φ_i)``
  by Fisher scoring, vectorized over all items of a model at once (batched ``m × m`` solves),
  with step halving so the objective never falls (a generalized EM step, so the marginal
  log-likelihood plus the log prior, the objective EM monitors, is monotone; Dempster, Laird &
  Rubin 1977). Its cost is items × Q × K, independent of the number of persons. Parameters
  shared between items (the common slope of 1PL and Rasch-family items, the rating-scale
  category parameters of RSM items) make the Newton system arrow-shaped: it is solved by the
  Schur complement of the per-item blocks, over every group of the skill at once.
* **Slopes** are raw slope–intercept parameters, free to be negative (a reverse-worded or
  miskeyed item; reported with a warning naming it) unless a prior on a or ``slopes="positive"``
  keeps them above 0.02.
* **The Rasch family.** ``rasch`` (dichotomous), ``pcm`` (Masters 1982) and ``rsm`` (Andrich
  1978) fix every slope at ``common_a`` (default 1) and estimate the latent variance instead,
  θ ~ N(0, σ²). The EM runs on the standard grid ``θ = σ z`` with the common slope ``a* = a σ``
  estimated (the likelihood is the same), and reports ``a = common_a``, ``b_k = −δ_k / a`` and
  the latent SD ``σ = a*/a``, as mirt's ``itemtype = "Rasch"`` does (Chalmers 2012). RSM steps
  are ``δ_ik = β_i + t_k`` with ``Σ_k t_k = 0``.
* **Acceleration.** SQUAREM (Varadhan & Roland 2008, scheme S3) extrapolates two EM steps,
  ``φ′ = φ₀ − 2α r + α² v`` with ``r = F(φ₀) − φ₀``, ``v = F(F(φ₀)) − 2F(φ₀) + φ₀``,
  ``α = −‖r‖/‖v‖``, and falls back to the plain EM step when the log-likelihood would fall.

Standard errors come from the inverse of an information matrix plus the negative Hessian of the
log prior, mapped to ``a, b, c, d, b_k`` by the delta method. Equality constraints are part of
the parameterisation: a skill's common slope is one parameter across its groups, and RSM items'
intercepts are ``β_i + t_k`` with ``J`` the Jacobian of the per-item intercepts with respect to
``(β, u)``, so the covariance is ``J (Jᵀ I J)⁻¹ Jᵀ``; fixed parameters (``common_a``, anchors)
are not estimated and have no SE. Two informations are available
(``se_method``):

* **Oakes** (Oakes 1999; mirt's default): the observed information of the marginal likelihood,
  ``−[∂²Q(φ | φ′)/∂φ∂φᵀ + ∂²Q(φ | φ′)/∂φ∂φ′ᵀ]`` at ``φ = φ′ = φ̂`` with ``Q`` the EM objective:
  the complete-data Hessian (item-separable) plus the change of the M-step gradient when the
  posterior's parameters move, by central differences (two E-steps per parameter).
* **XPD**: the empirical cross-product ``Σ_p s_p s_pᵀ`` of the per-person marginal scores
  ``s_p = Σ_q π_pq ∂ log P(x_p | θ_q)/∂φ`` (Mislevy 1986, Chalmers 2012). Each ``s_p`` is a sum of
  per-response contributions, computed by BLAS on dense data or gathered in chunks on sparse
  data; ``SᵀS`` is one dense product where it fits, a sparse one otherwise, and only its item
  blocks (one vectorized bincount per entry) beyond `FULL_COVARIANCE_MAX` parameters.

At N = 300 XPD overstates the SEs by about 6 % (2PL) where Oakes is within 1–2 % of the
replication SD; ``se_method="auto"`` (the default) takes Oakes up to 1,000 persons and XPD
beyond, where the two agree within 1–2 % and XPD costs a fifth (benchmarks/RESULTS.md).

References: Bock & Aitkin (1981); Baker & Kim (2004, ch. 6–7); Mislevy (1986); Oakes (1999);
Varadhan & Roland (2008); Chalmers (2012, the R package mirt).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration import _kernels as K
from calibration.results import (
    CalibrationIssue,
    EMProgress,
    ItemErrors,
    ItemSpec,
    PersonScores,
    Priors,
    SkillFit,
)
from irt import (
    DICHOTOMOUS_MODELS,
    MODELS,
    RASCH_MODELS,
    Bank,
    ItemParams,
    SparseResponses,
    normal_grid,
)
from irt.io import ResponseLog

logger = logging.getLogger(__name__)

#: Logit standing for an asymptote fixed at 0 (c) or 1 (d): σ(∓40) is 0/1 to double precision.
LOGIT_FIXED = 40.0
#: Bounds of the internal parameters: slopes ``|a| <= A_BOUND`` (``a >= A_MIN`` when slopes must
#: be positive: a prior on a, ``slopes="positive"``, a common slope), intercepts, logits.
A_BOUND = 20.0
A_MIN = 0.02
INTERCEPT_BOUND = 40.0
LOGIT_BOUND = 12.0
#: Largest Fisher-scoring step (in internal units) and the number of step halvings.
MAX_STEP = 1.0
MAX_HALVINGS = 12
#: Use the dense BLAS path when at least this share of persons × items is observed.
DENSE_MIN_FILL = 0.5
DENSE_MAX_CELLS = 40_000_000
#: Products of at least this many cells (dense) or responses (sparse) run in float32.
SINGLE_PRECISION_MIN = 1_000_000
#: Above this many free parameters in a skill, standard errors use the item-block diagonal
#: of the cross-product information instead of its full inverse.
FULL_COVARIANCE_MAX = 4000
#: ... or when the sparse product ``SᵀS`` would cost more than this many multiply-adds.
XPD_WORK_MAX = 1.5e8
#: The per-person scores are held as a dense persons × parameters matrix (one BLAS product
#: ``SᵀS``) up to this many entries and ``N·P²`` multiply-adds.
DENSE_SCORES_MAX = 2.5e7
DENSE_XPD_WORK_MAX = 4e9
#: ``se_method="auto"`` uses Oakes' information for skills of at most this many persons (XPD
#: overstates the SEs by ~6 % at N = 300, ~1 % at N = 2,000; benchmarks/RESULTS.md) while its
#: ``2·P`` E-steps cost at most ``OAKES_WORK_MAX`` response × node evaluations; XPD otherwise.
OAKES_AUTO_MAX_PERSONS = 1000
OAKES_WORK_MAX = 5e8
#: Central-difference step (internal units) for Oakes' derivatives.
OAKES_STEP = 1e-4
SE_METHODS = ("auto", "oakes", "xpd")
#: Convergence also needs every parameter's estimated distance to the EM fixed point,
#: ``|Δ| ρ / (1 − ρ)`` with ``ρ`` its contraction rate over the last cycles, below
#: ``SLOW_FACTOR × tol``: a parameter creeping along a flat ridge (a diverging slope) moves
#: less than ``tol`` per step while being far from any maximum.
SLOW_FACTOR = 100.0

Responses = SparseResponses | ResponseLog | ArrayLike


@dataclass
class _Group:
    """Items of one kind and category count within a skill (internal, mutable EM state)."""

    kind: str
    n_cat: int
    local: NDArray[np.int64]  # positions within the skill
    phi: NDArray[np.float64]  # (n, m)
    free: NDArray[np.bool_]  # (n, m)
    tied: NDArray[np.bool_]  # (n,) items sharing the skill's common slope (1PL, Rasch family)
    has_c: NDArray[np.bool_]
    has_d: NDArray[np.bool_]
    rsm: NDArray[np.bool_]  # (n,) RSM items sharing the group's category parameters
    a_lo: NDArray[np.float64]  # (n,) lower bound of the slope
    slope_prior: bool = True  # whether a prior on a applies (not to the Rasch family's σ)


@dataclass
class _Skill:
    name: str
    items: NDArray[np.int64]  # global item positions of the calibrated items
    person_global: NDArray[np.int64]  # local person -> global person
    person: NDArray[np.int64]
    item: NDArray[np.int64]  # local item positions
    response: NDArray[np.int64]
    kmax: int
    groups: list[_Group]
    free_latent: bool
    item_ids: tuple[str, ...]
    models: tuple[str, ...]
    latent: NDArray[np.float64] = field(default_factory=lambda: np.array([0.0, 0.0]))
    hist: NDArray[np.float64] | None = None  # log weights of an empirical histogram
    rasch: bool = False  # Rasch-family skill: slopes fixed at common_a, θ ~ N(0, σ²)
    common_a: float = 1.0


class MMLCalibrator:
    """Marginal maximum likelihood (Bock–Aitkin EM) calibration of a mixed-model item bank.

    Parameters
    ----------
    model : default model for items without a spec (``1pl``, ``2pl``, ``3pl``, ``4pl``,
        ``rasch``, ``grm``, ``gpcm``, ``pcm``, ``rsm``).
    priors : `Priors` (default: none on a and b, Beta(6, 16) on the 3PL/4PL c, Beta(18, 2) on d).
    n_nodes, half_width : the quadrature grid, ``n_nodes`` equally spaced nodes on
        ``± half_width`` SDs with normal weights (Bock & Aitkin 1981); mirt's reference fits use
        121 nodes on ±8 (steep items, slopes above 3, need a finer grid than the default).
    max_iter : EM cycles at most (a SQUAREM cycle counts once and runs up to three EM steps).
    tol : convergence when no internal parameter (intercepts, logits; slopes relative to
        ``max(|a|, 1)``) moves more than ``tol`` in one EM step and none is still creeping
        steadily (estimated distance to the EM fixed point above ``100 tol``, `SLOW_FACTOR`).
    accelerate : ``"squarem"`` or ``"none"``.
    common_a : the common slope of the equal-slope models. ``1pl``: fixes it (e.g. 1.0 for a
        Rasch model with θ ~ N(0, 1)); None estimates it. ``rasch``, ``pcm``, ``rsm``: the slope
        every item carries (None means 1), with the latent SD estimated. Refused (`ValueError`)
        when an item to calibrate has its own slope (``2pl``, ``3pl``, ``4pl``, ``grm``,
        ``gpcm``).
    slopes : ``"free"`` (default: a slope may turn negative; a warning names the item) or
        ``"positive"`` (every free slope kept >= 0.02). A prior on a implies positive slopes.
    recode : responses whose smallest observed code is above 0 (Likert 1..5) are refused unless
        ``recode`` is True; then every response is shifted down by that code (``recode_shift_``).
    min_responses : items with fewer responses are calibrated but flagged.
    standard_errors : compute `se_`.
    se_method : ``"oakes"`` (Oakes 1999: the observed information, as mirt's default),
        ``"xpd"`` (the cross-product of the per-person scores; Mislevy 1986) or ``"auto"``
        (default): Oakes for skills of at most `OAKES_AUTO_MAX_PERSONS` persons (while its two
        E-steps per parameter stay below `OAKES_WORK_MAX`), XPD beyond. At N = 300 XPD
        overstates the SEs by about 6 % where Oakes is within 1 % of the replication SD; at
        N = 2,000 both are within 2 % (benchmarks/RESULTS.md).
    dense : ``"auto"``, ``True`` or ``False``: the BLAS path for dense dichotomous data.
    latent : ``"normal"`` (θ ~ N(0, 1) per skill) or ``"histogram"``: the latent density is an
        empirical histogram on the quadrature nodes, re-estimated every cycle as the posterior
        mass ``w_q = Σ_p π_pq / N`` and re-standardized to mean 0 and SD 1 (items transformed
        with it: ``a ← a σ``, intercepts ``δ ← δ + a μ``) unless anchors fix the scale
        (Bock & Aitkin 1981; Woods 2007).
    callback : called with an `EMProgress` after every cycle (progress bars).

    Attributes (after `fit`)
    ------------------------
    items_ : `irt.Bank` of the calibrated items (excluded items left out; anchors included).
    se_ : `ItemErrors` aligned with ``items_``.
    n_responses_ : responses per item of ``items_``.
    loglik_, aic_, bic_, n_parameters_ : totals over skills.
    n_iter_ : the largest number of EM cycles over skills. converged_ : all skills converged.
    recode_shift_ : what was subtracted from every response (0 unless ``recode``).
    skills_ : one `SkillFit` per skill. scores_ : `PersonScores` (EAP, posterior SD).
    issues_ : `CalibrationIssue` tuple (also logged). excluded_ : ids of items not calibrated.
    """

    def __init__(self, model: str = "2pl", *, priors: Priors | None = None, n_nodes: int = 41,
                 half_width: float = 6.0, max_iter: int = 500, tol: float = 1e-4,
                 accelerate: str = "squarem", common_a: float | None = None,
                 min_responses: int = 30, standard_errors: bool = True,
                 dense: bool | str = "auto", latent: str = "normal", slopes: str = "free",
                 recode: bool = False, se_method: str = "auto",
                 callback: Callable[[EMProgress], None] | None = None) -> None:
        self.model = model
        self.priors = priors
        self.n_nodes = n_nodes
        self.half_width = half_width
        self.max_iter = max_iter
        self.tol = tol
        self.accelerate = accelerate
        self.common_a = common_a
        self.min_responses = min_responses
        self.standard_errors = standard_errors
        self.dense = dense
        self.latent = latent
        self.se_method = se_method
        self.slopes = slopes
        self.recode = recode
        self.callback = callback

    # ------------------------------------------------------------------ public API
    _PARAMS = ("model", "priors", "n_nodes", "half_width", "max_iter", "tol", "accelerate",
               "common_a", "min_responses", "standard_errors", "dense", "latent", "slopes",
               "recode", "se_method", "callback")

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """The constructor settings (scikit-learn estimator protocol)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: object) -> MMLCalibrator:
        """Change constructor settings; unknown names raise `ValueError`."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"unknown setting {name!r}; expected one of {self._PARAMS}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if v != _DEFAULTS.get(k)]
        return f"MMLCalibrator({', '.join(changed)})"

    def fit(self, responses: Responses, items: Bank | Sequence[ItemSpec] | None = None,
            anchors: Bank | None = None) -> MMLCalibrator:
        """Calibrate from responses; returns ``self``.

        Parameters
        ----------
        responses : `irt.SparseResponses` (item indices follow ``items``), an
            `irt.io.ResponseLog` (matched to ``items`` by id), or a dense persons × items matrix
            (NaN = missing).
        items : the model, skill and category count of every item (`ItemSpec` list or an
            `irt.Bank`, whose parameters are ignored); None fits ``self.model`` everywhere.
        anchors : items held fixed at these parameters (matched by id). With anchors in a skill,
            the latent mean and SD of that skill are estimated, so the scale is the anchors'.
        """
        self._validate_settings()
        priors = self.priors if self.priors is not None else Priors()
        data, person_ids, specs = self._prepare(responses, items)
        anchor_map = self._anchor_map(anchors, specs)
        self._check_common_a(specs, anchor_map)
        quad = normal_grid(self.n_nodes, 0.0, 1.0, self.half_width)
        self._issues: list[CalibrationIssue] = []
        self._se_methods: set[str] = set()
        n_items = len(specs)
        counts = np.bincount(data.item, minlength=n_items)
        kcat = np.array([s.n_categories for s in specs], dtype=np.int64)
        skills = list(dict.fromkeys(s.skill for s in specs))
        fitted: dict[int, ItemParams] = {}
        se_rows: dict[int, dict[str, object]] = {}
        skill_fits: list[SkillFit] = []
        theta = np.zeros((data.n_persons, len(skills)))
        theta_se = np.ones((data.n_persons, len(skills)))
        n_resp = np.zeros((data.n_persons, len(skills)), dtype=np.int64)
        excluded: list[str] = []
        for s_idx, skill in enumerate(skills):
            members = np.array([i for i, s in enumerate(specs) if s.skill == skill], dtype=np.int64)
            keep = self._screen_items(skill, members, specs, data, kcat, anchor_map, excluded)
            if keep.size == 0:
                continue
            self._check_identified(skill, keep, specs, anchor_map)
            problem = self._build_skill(skill, keep, specs, data, kcat, anchor_map)
            result = self._run_em(problem, quad, priors)
            skill_fits.append(result["fit"])
            for pos, params in zip(problem.items, result["params"], strict=True):
                fitted[int(pos)] = params
            se_rows.update(result["se"])
            theta[problem.person_global, s_idx] = result["eap"]
            theta_se[problem.person_global, s_idx] = result["eap_sd"]
            everyone = problem.person_global.size == data.n_persons  # local = global numbers
            n_resp[:, s_idx] = np.bincount(
                problem.person if everyone else problem.person_global[problem.person],
                minlength=data.n_persons)
            mean, sd = result["fit"].latent_mean, result["fit"].latent_sd
            absent = n_resp[:, s_idx] == 0
            theta[absent, s_idx], theta_se[absent, s_idx] = mean, sd
        if not fitted:
            raise ValueError(f"no item could be calibrated ({len(excluded)} excluded: "
                             f"{'; '.join(i.message for i in self._issues[:3])})")
        order = sorted(fitted)
        self.items_ = Bank.from_params(fitted[i] for i in order)
        self.n_responses_ = counts[order]
        self.se_ = self._errors(order, se_rows)
        self.excluded_ = tuple(excluded)
        self.skills_ = tuple(skill_fits)
        self.loglik_ = float(sum(f.loglik for f in skill_fits))
        self.n_parameters_ = int(sum(f.n_parameters for f in skill_fits))
        n_persons = max(int(data.n_persons), 1)
        self.aic_ = -2.0 * self.loglik_ + 2.0 * self.n_parameters_
        self.bic_ = -2.0 * self.loglik_ + math.log(n_persons) * self.n_parameters_
        self.n_iter_ = max((f.n_iter for f in skill_fits), default=0)
        self.converged_ = all(f.converged for f in skill_fits)
        self.scores_ = PersonScores(person_ids, tuple(skills), theta, theta_se, n_resp)
        self.issues_ = tuple(self._issues)
        return self

    # ------------------------------------------------------------------ input handling
    def _validate_settings(self) -> None:
        if str(self.model).lower() not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {MODELS}")
        if int(self.n_nodes) < 5:
            raise ValueError(f"n_nodes must be >= 5, got {self.n_nodes}")
        if not self.half_width > 0:
            raise ValueError(f"half_width must be > 0, got {self.half_width}")
        if int(self.max_iter) < 1 or not self.tol > 0:
            raise ValueError("max_iter must be >= 1 and tol > 0")
        if self.accelerate not in ("squarem", "none"):
            raise ValueError(f"accelerate must be 'squarem' or 'none', got {self.accelerate!r}")
        if self.common_a is not None and not (math.isfinite(self.common_a)
                                              and self.common_a > 0):
            raise ValueError(f"common_a must be > 0, got {self.common_a}")
        if self.slopes not in ("free", "positive"):
            raise ValueError(f"slopes must be 'free' or 'positive', got {self.slopes!r}")
        if self.latent not in ("normal", "histogram"):
            raise ValueError(f"latent must be 'normal' or 'histogram', got {self.latent!r}")
        if self.latent == "histogram" and self.common_a is not None:
            raise ValueError("latent='histogram' estimates the latent SD: it cannot be combined "
                             "with a fixed common_a")
        if self.se_method not in SE_METHODS:
            raise ValueError(f"se_method must be one of {SE_METHODS}, got {self.se_method!r}")
        if self.dense not in ("auto", True, False):
            raise ValueError(f"dense must be 'auto', True or False, got {self.dense!r}")

    def _prepare(self, responses: Responses, items: Bank | Sequence[ItemSpec] | None
                 ) -> tuple[SparseResponses, tuple[str, ...], list[ItemSpec]]:
        model = str(self.model).lower()
        if isinstance(items, Bank):
            specs_in: list[ItemSpec] | None = [
                ItemSpec(items.item_ids[i], items.models[i], items.skills[i],
                         int(items.n_categories[i])) for i in range(len(items))]
        elif items is not None:
            specs_in = list(items)
            ids = [s.item_id for s in specs_in]
            if len(set(ids)) != len(ids):
                raise ValueError("duplicate item id in the item specs")
        else:
            specs_in = None
        self.recode_shift_ = 0
        if isinstance(responses, ResponseLog):
            responses = self._recoded_log(responses)
            person_ids = responses.person_ids
            if specs_in is None:
                specs = [ItemSpec(i, model) for i in responses.item_ids]
                data = responses.data
            else:
                specs = specs_in
                data = responses.for_bank(_placeholder_bank(specs, responses, model))
        else:
            data = responses if isinstance(responses, SparseResponses) \
                else SparseResponses.from_dense(responses)
            data = self._recoded(data, "the responses")
            # without ids, an item's id is its 0-based index in the data ("0", "1", …), so
            # int(item_id) is the column of a matrix or the index of SparseResponses.item, and
            # an id can't be mistaken for a 1-based generated one ("i0001")
            person_ids = tuple(str(k) for k in range(data.n_persons))
            if specs_in is None:
                specs = [ItemSpec(str(k), model) for k in range(data.n_items)]
            else:
                specs = specs_in
                if len(specs) != data.n_items:
                    raise ValueError(f"responses cover {data.n_items} items but {len(specs)} "
                                     f"item specs were given")
        specs = _resolve_categories(specs, data, responses)
        return data, person_ids, specs

    def _recoded(self, data: SparseResponses, source: str) -> SparseResponses:
        """Category codes must start at 0: shift them with ``recode``, else refuse."""
        if data.response.size == 0:
            return data
        low, high = int(data.response.min()), int(data.response.max())
        if low <= 0 or high == low:  # one code only: nothing to recode (no item varies)
            return data
        if not self.recode:
            raise ValueError(
                f"{source}: the smallest response code is {low} (codes {low}..{high}), but "
                f"categories are numbered from 0; recode them to 0..{high - low} (subtract "
                f"{low} from every response) or pass recode=True (proficio calibrate --recode)"
                f", which does exactly that")
        self.recode_shift_ = low
        logger.info("responses recoded: %d..%d -> 0..%d", low, high, high - low)
        return SparseResponses(data.person, data.item, data.response - low, data.n_persons,
                               data.n_items)

    def _recoded_log(self, log: ResponseLog) -> ResponseLog:
        data = self._recoded(log.data, "the response log")
        return log if data is log.data else dataclasses.replace(log, data=data)

    def _check_common_a(self, specs: list[ItemSpec], anchors: dict[int, ItemParams]) -> None:
        """``common_a`` is a property of the equal-slope models; refuse it where it can't hold."""
        if self.common_a is None:
            return
        for k, s in enumerate(specs):
            if k not in anchors and s.model not in ("1pl", *RASCH_MODELS):
                raise ValueError(
                    f"common_a = {self.common_a:g} fixes the one slope shared by 1pl, rasch, pcm "
                    f"and rsm items, but item {s.item_id!r} uses model {s.model!r}, which "
                    f"estimates a slope per item; calibrate it as 'rasch' or '1pl' (dichotomous) "
                    f"or 'pcm'/'rsm' (polytomous), or leave common_a unset")

    def _check_identified(self, skill: str, keep: NDArray[np.int64], specs: list[ItemSpec],
                          anchors: dict[int, ItemParams]) -> None:
        """Warn about skills too small to identify their items' slopes."""
        free = [int(i) for i in keep if int(i) not in anchors]
        if not free or len(keep) > 2:
            return
        ids = ", ".join(repr(specs[i].item_id) for i in free)
        one = len(keep) == 1
        if one or all(specs[i].model in DICHOTOMOUS_MODELS
                      and specs[i].model not in ("1pl", "rasch") for i in free):
            for i in free:
                self._issue("unidentified", skill, specs[i].item_id,
                            f"skill {skill!r}: item {specs[i].item_id!r} is one of only "
                            f"{len(keep)} item(s) ({ids}); its slope and the latent scale are "
                            f"not identified by so few items, so its estimates are arbitrary "
                            f"(they stay near their start values): add items to the skill or "
                            f"hold its parameters fixed (anchors)")

    def _anchor_map(self, anchors: Bank | None, specs: list[ItemSpec]) -> dict[int, ItemParams]:
        if anchors is None:
            return {}
        index = {s.item_id: k for k, s in enumerate(specs)}
        out: dict[int, ItemParams] = {}
        for it in anchors.params():
            if it.item_id not in index:
                continue
            spec = specs[index[it.item_id]]
            if it.model != spec.model or it.n_categories != spec.n_categories:
                raise ValueError(f"anchor {it.item_id!r}: model {it.model} with "
                                 f"{it.n_categories} categories does not match the item spec "
                                 f"({spec.model}, {spec.n_categories} categories)")
            out[index[it.item_id]] = ItemParams(it.item_id, it.model, it.a, it.b, it.c, it.d,
                                                it.thresholds, spec.skill)
        return out

    def _issue(self, kind: str, skill: str, item_id: str | None, message: str) -> None:
        self._issues.append(CalibrationIssue(kind, skill, item_id, message))
        logger.warning("%s", message)

    def _screen_items(self, skill: str, members: NDArray[np.int64], specs: list[ItemSpec],
                      data: SparseResponses, kcat: NDArray[np.int64],
                      anchors: dict[int, ItemParams], excluded: list[str]) -> NDArray[np.int64]:
        kmax = int(kcat[members].max())
        if members.size == data.n_items:  # the skill holds every item: nothing to select
            key = data.item * kmax + data.response
        else:
            in_skill = np.zeros(data.n_items, dtype=bool)
            in_skill[members] = True
            sel = in_skill[data.item]
            key = data.item[sel] * kmax + data.response[sel]
        table = np.bincount(key, minlength=data.n_items * kmax).reshape(data.n_items, kmax)
        keep = []
        for i in members:
            iid, total = specs[i].item_id, int(table[i].sum())
            if i in anchors:
                keep.append(i)
                continue
            seen = int(np.count_nonzero(table[i, : kcat[i]]))
            if total == 0:
                excluded.append(iid)
                self._issue("excluded", skill, iid, f"item {iid!r}: no responses; not calibrated")
                continue
            if seen < 2:
                cat = int(np.flatnonzero(table[i])[0])
                excluded.append(iid)
                self._issue("excluded", skill, iid,
                            f"item {iid!r}: all {total} responses are in category {cat}; "
                            f"its parameters are not identified; not calibrated")
                continue
            if total < self.min_responses:
                self._issue("few_responses", skill, iid,
                            f"item {iid!r}: only {total} responses (< {self.min_responses}); "
                            f"estimates are imprecise")
            if seen < kcat[i]:
                missing = [k for k in range(int(kcat[i])) if table[i, k] == 0]
                self._issue("unobserved_category", skill, iid,
                            f"item {iid!r}: categories {missing} never observed; their "
                            f"thresholds are poorly determined")
            keep.append(i)
        return np.array(keep, dtype=np.int64)

    def _build_skill(self, skill: str, keep: NDArray[np.int64], specs: list[ItemSpec],
                     data: SparseResponses, kcat: NDArray[np.int64],
                     anchors: dict[int, ItemParams]) -> _Skill:
        if keep.size == data.n_items and np.array_equal(keep, np.arange(data.n_items)):
            # every item of the data (one skill): the arrays are the data's own, not copies
            persons_g = np.asarray(data.person, dtype=np.int64)
            item_local, resp = np.asarray(data.item, dtype=np.int64), data.response
        else:
            local_of = np.full(data.n_items, -1, dtype=np.int64)
            local_of[keep] = np.arange(keep.size)
            sel = local_of[data.item] >= 0
            persons_g = data.person[sel]
            item_local = local_of[data.item[sel]]
            resp = data.response[sel]
        present = np.bincount(persons_g, minlength=data.n_persons) > 0  # O(n), no sort
        uniq = np.flatnonzero(present)
        # local person numbers: the global ones when everyone answered in this skill
        person_local = persons_g if uniq.size == data.n_persons \
            else (np.cumsum(present) - 1)[persons_g]
        kmax = int(kcat[keep].max())
        # start values from marginal proportions (Baker & Kim 2004, ch. 6)
        table = np.bincount(item_local * kmax + resp, minlength=keep.size * kmax)
        table = table.reshape(keep.size, kmax).astype(float)
        groups: list[_Group] = []
        kinds = []
        for i in keep:
            m = specs[i].model
            kinds.append((K.KIND_DICHOTOMOUS if m in DICHOTOMOUS_MODELS else m, int(kcat[i])))
        free_latent = any(int(i) in anchors for i in keep)
        rasch = self._rasch_skill(skill, keep, specs, anchors)
        for key in dict.fromkeys(kinds):
            local = np.array([k for k, kk in enumerate(kinds) if kk == key], dtype=np.int64)
            groups.append(self._start_group(key[0], key[1], local, keep, specs, table, anchors,
                                            free_latent))
        common = 1.0 if self.common_a is None else float(self.common_a)
        return _Skill(skill, keep, uniq, person_local, item_local, resp, kmax, groups,
                      free_latent, tuple(specs[i].item_id for i in keep),
                      tuple(specs[i].model for i in keep), rasch=rasch, common_a=common)

    def _rasch_skill(self, skill: str, keep: NDArray[np.int64], specs: list[ItemSpec],
                     anchors: dict[int, ItemParams]) -> bool:
        """Whether a skill is on the Rasch scale; refuses mixing it with free-slope items."""
        free = [int(i) for i in keep if int(i) not in anchors]
        family = [i for i in free if specs[i].model in RASCH_MODELS]
        if not family:
            return False
        other = [i for i in free if specs[i].model not in RASCH_MODELS]
        if other:
            a, b = specs[family[0]], specs[other[0]]
            raise ValueError(
                f"skill {skill!r}: item {a.item_id!r} ({a.model}) is of the Rasch family, whose "
                f"slopes are all fixed at common_a with the latent SD estimated, but item "
                f"{b.item_id!r} ({b.model}) has a slope of its own on a N(0, 1) scale; use one "
                f"family per skill (rasch/pcm/rsm, or 2pl/3pl/grm/gpcm) or put them in separate "
                f"skills")
        return True

    def _start_group(self, kind: str, n_cat: int, local: NDArray[np.int64],
                     keep: NDArray[np.int64], specs: list[ItemSpec], table: NDArray,
                     anchors: dict[int, ItemParams], anchored_skill: bool) -> _Group:
        n = local.size
        glob = keep[local]
        models = [specs[i].model for i in glob]
        counts = table[local, :n_cat] + 0.5
        family = np.array([m in RASCH_MODELS for m in models])
        common = 1.0 if self.common_a is None else float(self.common_a)
        # equal slopes: one estimated slope (1PL without common_a; the Rasch family's a σ when
        # no anchors set the scale), or fixed at common_a
        shared = np.array([m == "1pl" for m in models]) | family
        estimated = (np.array([m == "1pl" for m in models]) & (self.common_a is None)) \
            | (family & (not anchored_skill))
        if kind == K.KIND_DICHOTOMOUS:
            has_c = np.array([m in ("3pl", "4pl") for m in models])
            has_d = np.array([m == "4pl" for m in models])
            c0 = np.where(has_c, 0.2, 0.0)
            p = counts[:, 1] / counts.sum(axis=1)
            p_adj = np.clip((p - c0) / (1.0 - c0), 0.02, 0.98)
            phi = np.column_stack([
                np.ones(n), np.log(p_adj / (1 - p_adj)) * math.sqrt(1 + 1 / 2.89),
                np.where(has_c, math.log(0.2 / 0.8), -LOGIT_FIXED),
                np.where(has_d, math.log(0.97 / 0.03), LOGIT_FIXED)])
            free = np.column_stack([np.ones(n, bool), np.ones(n, bool), has_c, has_d])
        else:
            has_c = has_d = np.zeros(n, bool)
            cum = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # n(X >= k)
            total = cum[:, :1]
            if kind == K.KIND_GRM:
                pk = np.clip(cum[:, 1:] / total, 0.01, 0.99)
                inter = np.log(pk / (1 - pk)) * math.sqrt(1 + 1 / 2.89)
                inter = -np.maximum.accumulate(-inter, axis=1)  # keep decreasing
                inter -= np.arange(inter.shape[1]) * 1e-3
            else:
                inter = np.log(counts[:, 1:] / counts[:, :-1])
            phi = np.column_stack([np.ones(n), inter])
            free = np.ones_like(phi, dtype=bool)
        fixed_shared = shared & ~estimated
        phi[shared, 0] = common
        free[fixed_shared, 0] = False
        rsm = np.array([m == "rsm" for m in models])
        if rsm.any():  # project the start onto δ_ik = β_i + t_k with Σ_k t_k = 0
            beta = phi[rsm, 1:].mean(axis=1, keepdims=True)
            t = (phi[rsm, 1:] - beta).mean(axis=0, keepdims=True)
            phi[rsm, 1:] = beta + t
        for row, i in enumerate(glob):
            if int(i) in anchors:
                phi[row] = _internal(anchors[int(i)], kind)
                free[row] = False
        positive = self.slopes == "positive" or (self.priors is not None
                                                 and self.priors.a is not None)
        a_lo = np.where(shared | positive, A_MIN, -A_BOUND)
        return _Group(kind, n_cat, local, phi, free, estimated & free[:, 0], has_c, has_d,
                      rsm & free[:, 1], a_lo, slope_prior=not family.any())

    # ------------------------------------------------------------------ EM
    def _run_em(self, sk: _Skill, quad, priors: Priors) -> dict:
        n_p, n_s, kmax = sk.person_global.size, sk.items.size, sk.kmax
        nodes = quad.nodes
        base_logw = quad.log_weights
        design = _Design(sk.person, sk.item, sk.response, n_p, n_s, kmax,
                         self._use_dense(sk))

        if self.latent == "histogram":
            sk.hist = base_logw.copy()

        def unpack(x: NDArray) -> None:
            pos = 0
            for g in sk.groups:
                k = int(g.free.sum())
                g.phi[g.free] = x[pos:pos + k]
                _clip_phi(g)
                pos += k
            if sk.hist is not None:  # packed as weights: their changes are what matters
                w = np.maximum(x[pos:pos + nodes.size], 0.0)
                sk.hist = np.log(np.maximum(w / w.sum(), 1e-300))
            elif sk.free_latent:
                sk.latent[:] = x[pos:pos + 2]

        def pack() -> NDArray:
            parts = [g.phi[g.free] for g in sk.groups]
            if sk.hist is not None:
                parts.append(np.exp(sk.hist))
            elif sk.free_latent:
                parts.append(sk.latent.copy())
            return np.concatenate(parts) if parts else np.zeros(0)

        def log_weights() -> NDArray:
            if sk.hist is not None:
                return sk.hist
            if not sk.free_latent:
                return base_logw
            mu, log_sd = sk.latent
            z = (nodes - mu) / math.exp(log_sd)
            lw = -0.5 * z * z
            return lw - np.log(np.exp(lw - lw.max()).sum()) - lw.max()

        def table() -> NDArray:
            return _log_table(sk, nodes)

        def em_step(x: NDArray) -> tuple[NDArray, float, float, bool]:
            """One EM step from ``x``: the new point, the penalized objective (log-likelihood +
            log prior, what EM increases) and the log-likelihood at ``x``, and validity."""
            unpack(x)
            if not all(np.all(K.valid(g.kind, g.phi)) for g in sk.groups):
                return x, -np.inf, -np.inf, False
            post, ll, r = design.estep(table(), log_weights())
            penalty = sum(float(_prior_terms(g, priors)[0].sum()) for g in sk.groups)
            _m_step_skill(sk.groups, [r[g.local, : g.n_cat, :] for g in sk.groups], nodes,
                          priors)
            if sk.hist is not None:
                _update_histogram(sk, post.sum(axis=0), nodes)
            elif sk.free_latent:
                nq = post.sum(axis=0)
                mu = float(nq @ nodes / nq.sum())
                var = float(nq @ (nodes - mu) ** 2 / nq.sum())
                sk.latent[:] = (mu, 0.5 * math.log(max(var, 1e-4)))
            return pack(), ll + penalty, ll, True

        x0 = pack()
        trace: list[float] = []
        objective: list[float] = []
        converged = False
        n_steps = 0
        cycle = 0
        step_max = 4.0
        change = np.inf
        history: list[NDArray] = []  # the (scaled) first EM step of the last cycles
        remaining = np.zeros(x0.size)
        for cycle in range(1, int(self.max_iter) + 1):
            x1, obj0, ll0, _ = em_step(x0)
            n_steps += 1
            trace.append(ll0)
            objective.append(obj0)
            r = x1 - x0
            rel = r / _change_scale(sk, x1.size)  # the step convergence is judged on
            change = float(np.max(np.abs(rel))) if rel.size else 0.0
            self._progress(sk.name, cycle, ll0, change)
            history = [*history[-2:], rel]
            remaining = _distance_to_fixed_point(history, 0.1 * self.tol)
            if change < self.tol and not np.any(remaining > SLOW_FACTOR * self.tol):
                x0 = x1
                converged = True
                break
            if self.accelerate == "none":
                x0 = x1
                continue
            x2, obj1, _, _ = em_step(x1)
            n_steps += 1
            v = x2 - 2.0 * x1 + x0
            nv = float(np.linalg.norm(v))
            if nv == 0.0:
                x0 = x2
                continue
            alpha = -min(float(np.linalg.norm(r)) / nv, step_max)
            alpha = min(alpha, -1.0)
            if alpha == -1.0:
                x0 = x2
                continue
            x_acc = x0 - 2.0 * alpha * r + alpha * alpha * v
            x3, obj_acc, _, ok = em_step(x_acc)
            n_steps += 1
            if ok and np.isfinite(obj_acc) and obj_acc >= obj1 - 1e-8 * abs(obj1):
                x0 = x3
                if -alpha >= step_max:
                    step_max *= 4.0
            else:
                x0 = x2
        unpack(x0)
        post, ll, r = design.estep(table(), log_weights())
        trace.append(ll)
        penalty = sum(float(_prior_terms(g, priors)[0].sum()) for g in sk.groups)
        objective.append(ll + penalty)
        if not converged:
            moving = np.maximum(remaining, np.abs(rel))
            names = _parameter_names(sk)
            worst_idx = [int(j) for j in np.argsort(-moving)[:5]
                         if moving[j] > SLOW_FACTOR * self.tol or j == np.argmax(moving)]
            still = "; ".join(f"{names[j]} (about {moving[j]:.2g} from its limit)"
                              for j in worst_idx)
            self._issue("not_converged", sk.name, None,
                        f"skill {sk.name!r}: EM did not converge in {self.max_iter} cycles "
                        f"(largest last change {change:.2g}, tol {self.tol:g}); still moving: "
                        f"{still}")
        drops = np.diff(np.array(objective))
        worst = float(drops.min()) if drops.size else 0.0
        scale = max(1.0, abs(objective[-1]))
        if worst < -1e-6 * scale:
            self._issue("loglik_decrease", sk.name, None,
                        f"skill {sk.name!r}: the EM objective (log-likelihood plus log prior) "
                        f"fell by {-worst:.3g} in one cycle; the estimates may not be a maximum")
        return self._finish(sk, post, ll, trace, cycle, n_steps, converged, nodes, priors,
                            design, tuple(objective))

    def _use_dense(self, sk: _Skill) -> bool:
        if self.dense is False or sk.kmax != 2:
            return False
        cells = sk.person_global.size * sk.items.size
        if self.dense is True:
            return True
        return cells <= DENSE_MAX_CELLS and sk.response.size >= DENSE_MIN_FILL * cells

    def _progress(self, skill: str, cycle: int, ll: float, change: float) -> None:
        logger.debug("skill %s cycle %d loglik %.6f change %.3g", skill, cycle, ll, change)
        if self.callback is not None:
            self.callback(EMProgress(skill, cycle, int(self.max_iter), float(ll), change))

    # ------------------------------------------------------------------ results
    def _finish(self, sk: _Skill, post: NDArray, ll: float, trace: list[float], cycle: int,
                n_steps: int, converged: bool, nodes: NDArray, priors: Priors,
                design: _Design, objective: tuple[float, ...]) -> dict:
        scale = _rasch_scale(sk)  # θ = σ z on the Rasch scale, 1 otherwise
        eap = post @ nodes
        eap_sd = np.sqrt(np.maximum(post @ nodes**2 - eap**2, 0.0))
        eap, eap_sd = eap * scale, eap_sd * scale
        n_free = _n_parameters(sk)
        if sk.hist is not None:
            n_free += nodes.size - (1 if sk.free_latent else 3)
        elif sk.free_latent:
            n_free += 2
        params: list[ItemParams | None] = [None] * sk.items.size
        se_rows: dict[int, dict[str, object]] = {}
        cov_blocks = self._covariance(sk, post, nodes, priors, design) if self.standard_errors \
            else None
        for gi, g in enumerate(sk.groups):
            a = g.phi[:, 0]
            slope = g.free[:, 0] & ~g.tied
            lo_hit = slope & (g.a_lo > 0) & (a <= g.a_lo + 1e-9)
            hi_hit = g.free[:, 0] & (np.abs(a) >= A_BOUND - 1e-9)
            cols = slice(1, 2) if g.kind == K.KIND_DICHOTOMOUS else slice(1, None)
            inter_hit = np.any(g.free[:, cols]
                               & (np.abs(g.phi[:, cols]) >= INTERCEPT_BOUND - 1e-9), axis=1)
            for row, loc in enumerate(g.local):
                gpos = int(sk.items[loc])
                params[loc] = _external(sk, g, row, int(loc))
                iid = params[loc].item_id
                if lo_hit[row]:
                    self._issue("bound", sk.name, iid,
                                f"item {iid!r}: discrimination a = {a[row]:.3g} is at its lower "
                                f"bound {A_MIN:g} (slopes kept positive); left free, it would "
                                f"turn negative")
                if hi_hit[row] or inter_hit[row]:
                    converged = False
                    what = f"discrimination a = {a[row]:.3g}" if hi_hit[row] \
                        else "an intercept"
                    self._issue("diverging", sk.name, iid,
                                f"item {iid!r}: {what} ran to its bound (|a| <= {A_BOUND:g}, "
                                f"|intercept| <= {INTERCEPT_BOUND:g}): the estimate diverges "
                                f"(a near-perfect item, or too few responses); the run is not "
                                f"converged")
                if slope[row] and a[row] < 0:
                    self._issue("negative_slope", sk.name, iid,
                                f"item {iid!r}: negative discrimination a = {a[row]:.3g}: the "
                                f"item runs against the scale (reverse-worded, or a wrong "
                                f"answer key?); check its scoring before using it")
                if cov_blocks is not None:
                    se_rows[gpos] = _delta_method(g, row, cov_blocks[gi][row], sk)
        mean, log_sd = (float(sk.latent[0]), float(sk.latent[1])) if sk.free_latent else (0, 0)
        weights = np.exp(sk.hist if sk.hist is not None else base_logw_of(sk, nodes))
        if sk.hist is not None:
            mean = float(weights @ nodes)
            log_sd = 0.5 * math.log(float(weights @ (nodes - mean) ** 2))
        n_persons = sk.person_global.size
        fit = SkillFit(
            skill=sk.name, n_items=sk.items.size, n_persons=n_persons,
            n_responses=int(sk.response.size), n_parameters=n_free, loglik=float(ll),
            aic=-2.0 * ll + 2.0 * n_free, bic=-2.0 * ll + math.log(max(n_persons, 1)) * n_free,
            n_iter=cycle, n_em_steps=n_steps, converged=converged, latent_mean=mean * scale,
            latent_sd=math.exp(log_sd) * scale, loglik_trace=tuple(trace),
            latent_nodes=tuple(float(v) * scale for v in nodes),
            latent_weights=tuple(float(v) for v in weights / weights.sum()),
            objective_trace=objective)
        return {"fit": fit, "params": params, "se": se_rows, "eap": eap, "eap_sd": eap_sd}

    def _covariance(self, sk: _Skill, post: NDArray, nodes: NDArray, priors: Priors,
                    design: _Design) -> list[NDArray]:
        """Per item, the covariance of its internal parameters ``(n, m, m)`` per group.

        The information is the cross-product (XPD) ``Σ_p s_p s_pᵀ`` or Oakes' observed
        information (`se_method`), plus the negative Hessian of the log prior; with more than
        `FULL_COVARIANCE_MAX` parameters (or an XPD product too large) only its item blocks.

        Equality constraints are honoured: the index gives the skill's common slope one
        parameter (`_parameter_index`), and RSM items, whose intercepts are ``δ_ik = β_i + t_k``
        with category parameters shared by their group, are estimated in that parameterisation.
        With ``J`` the Jacobian of the indexed internal parameters with respect to the
        structural ones (`_constraint_jacobian`) and ``I`` the information of the former,
        ``Cov(s) = (Jᵀ I J)⁻¹`` and the items' internal covariance is ``J Cov(s) Jᵀ`` (the
        delta method, exact here as the map is linear). Without RSM items ``J = I`` and
        nothing changes.
        """
        index, n_par = _parameter_index(sk)
        if n_par == 0:  # every item an anchor: nothing estimated, nothing to invert
            return [np.zeros((g.phi.shape[0], g.phi.shape[1], g.phi.shape[1]))
                    for g in sk.groups]
        jac = _constraint_jacobian(sk, index, n_par)
        prior_blocks = [(idx, _prior_terms(g, priors)[2]) for g, idx in zip(sk.groups, index,
                                                                             strict=True)]
        method = self._se_method(sk, n_par if jac is None else jac.shape[1])
        if method == "oakes":
            info = _oakes_information(sk, nodes, priors, index, n_par, design, jac)
            self._se_methods.add("Oakes observed information")
            return _blocks_of(sk, index, self._constrained_inverse(info, jac, sk.name))
        as_dense, work = _xpd_work(sk, n_par, design.dense)
        if not design.dense and as_dense and sk.kmax == 2:
            # dichotomous data held sparse whose scores fit densely: the BLAS path is cheaper
            design = _Design(sk.person, sk.item, sk.response, sk.person_global.size,
                             sk.items.size, sk.kmax, True, dtype=np.float64)
        if design.dense:
            s_dense = _dense_scores(sk, post, nodes, index, design, n_par)
            if n_par > FULL_COVARIANCE_MAX:
                self._se_methods.add("item-block diagonal of the cross-product (XPD) "
                                     "information")
                # (dense data are dichotomous: no RSM category parameters to share)
                return [self._invert_blocks(_dense_item_blocks(s_dense, idx) + pinfo, idx,
                                            sk.name) for idx, pinfo in prior_blocks]
            info = s_dense.T @ s_dense
            return self._full_xpd(sk, index, info, prior_blocks, jac)
        scores = _response_scores(sk, post, nodes, index)
        if n_par <= FULL_COVARIANCE_MAX and (as_dense or work <= XPD_WORK_MAX):
            info = _xpd_full(scores, index, sk.person_global.size, n_par, as_dense)
            return self._full_xpd(sk, index, info, prior_blocks, jac)
        self._se_methods.add("item-block diagonal of the cross-product (XPD) information")
        shared = _shared_slope_scores(sk, scores)
        out = []
        for sc, (idx, pinfo), g in zip(scores, prior_blocks, sk.groups, strict=True):
            blocks = _xpd_item_blocks(sk, g, idx, sc, shared) + pinfo
            rsm = g.rsm if g.kind != K.KIND_DICHOTOMOUS and g.n_cat > 2 \
                else np.zeros_like(g.rsm)
            cov = self._invert_blocks(blocks, np.where(rsm[:, None], -1, idx), sk.name)
            if rsm.any():
                self._rsm_item_blocks(sk, g, idx, sc, shared, blocks, cov)
            out.append(cov)
        return out

    def _full_xpd(self, sk: _Skill, index: list[NDArray], info: NDArray,
                  prior_blocks: list[tuple[NDArray, NDArray]],
                  jac: NDArray | None = None) -> list[NDArray]:
        for idx, pinfo in prior_blocks:
            for a_ in range(idx.shape[1]):
                for b_ in range(idx.shape[1]):
                    ok = (idx[:, a_] >= 0) & (idx[:, b_] >= 0)
                    np.add.at(info, (idx[ok, a_], idx[ok, b_]), pinfo[ok, a_, b_])
        self._se_methods.add("cross-product (XPD) information")
        if jac is not None:
            info = jac.T @ info @ jac
        return _blocks_of(sk, index, self._constrained_inverse(info, jac, sk.name))

    def _constrained_inverse(self, info: NDArray, jac: NDArray | None, skill: str) -> NDArray:
        """``J (Jᵀ I J)⁻¹ Jᵀ`` given the structural information ``Jᵀ I J`` (``I⁻¹`` if no J)."""
        cov = self._invert(info, skill)
        return cov if jac is None else jac @ cov @ jac.T

    def _invert_blocks(self, blocks: NDArray, idx: NDArray, skill: str) -> NDArray:
        """Invert each item's information block over its free parameters."""
        cov = np.zeros_like(blocks)
        for row in range(blocks.shape[0]):
            sel = np.flatnonzero(idx[row] >= 0)
            if sel.size:
                cov[row][np.ix_(sel, sel)] = self._invert(blocks[row][np.ix_(sel, sel)], skill)
        return cov

    def _rsm_item_blocks(self, sk: _Skill, g: _Group, idx: NDArray, sc: _Scores,
                         shared: NDArray, blocks: NDArray, cov: NDArray) -> None:
        """Item-block covariance of a group's RSM items (large banks), in place in ``cov``.

        As the tied slope enters every item block with its whole score, so do the group's
        category parameters ``u``: item ``i``'s block is the structural information over
        ``(a*, β_i, u)`` (its block of ``Jᵀ I J``), from the per-person scores
        ``s_p,β_i = Σ_k s_p,ik`` and ``s_p,u = Σ_{i'} Cᵀ s_p,i'`` (``C = [I; −1ᵀ]``), inverted
        and mapped back by ``J_i`` (``δ_ik = β_i + (C u)_k``). Like every item-block
        approximation it ignores the covariances between items' own parameters (the locations
        share the uncertainty of the latent mean): on 15 RSM items × 2,000 persons these blocks
        give 0.74–0.82 of the full SEs (PCM items: 0.89–0.96); per-item blocks with free steps
        gave 0.63–0.76. The path is only taken beyond `FULL_COVARIANCE_MAX` parameters."""
        n, m = g.phi.shape
        k2 = g.n_cat - 2
        c_mat = np.vstack([np.eye(k2), -np.ones((1, k2))])
        rsm_resp = g.rsm[sc.row]
        inter = sc.values[:, 1:]  # (n_j, K − 1) per-response intercept scores
        su = np.zeros((sk.person_global.size, k2))
        for u in range(k2):
            su[:, u] = np.bincount(sc.person[rsm_resp], inter[rsm_resp] @ c_mat[:, u],
                                   minlength=sk.person_global.size)
        uu = su.T @ su
        beta = inter.sum(axis=1)
        bu = np.column_stack([np.bincount(sc.row, beta * su[sc.person, u], minlength=n)
                              for u in range(k2)])  # (n, K − 2)
        au = shared @ su  # the common slope with u
        for row in np.flatnonzero(g.rsm):
            slope = bool(idx[row, 0] >= 0)
            own = np.zeros((m, int(slope) + 1))  # (a*, β_i) → φ_i
            if slope:
                own[0, 0] = 1.0
            own[1:, -1] = 1.0
            n_own = own.shape[1]
            info = np.zeros((n_own + k2, n_own + k2))
            info[:n_own, :n_own] = own.T @ blocks[row] @ own
            info[n_own - 1, n_own:] = info[n_own:, n_own - 1] = bu[row]
            if slope:
                info[0, n_own:] = info[n_own:, 0] = au
            info[n_own:, n_own:] = uu
            jac = np.zeros((m, n_own + k2))
            jac[:, :n_own] = own
            jac[1:, n_own:] = c_mat
            cov[row] = jac @ self._invert(info, sk.name) @ jac.T

    def _se_method(self, sk: _Skill, n_par: int) -> str:
        """``oakes`` or ``xpd``: ``auto`` takes Oakes at small N while its E-steps are cheap."""
        if self.se_method != "auto":
            return self.se_method
        work = 2.0 * n_par * sk.response.size * self.n_nodes
        small = sk.person_global.size <= OAKES_AUTO_MAX_PERSONS
        return "oakes" if small and n_par <= FULL_COVARIANCE_MAX and work <= OAKES_WORK_MAX \
            else "xpd"

    def _invert(self, info: NDArray, skill: str) -> NDArray:
        try:
            cov = np.linalg.inv(info)
            if np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0):
                return cov
        except np.linalg.LinAlgError:
            pass
        self._issue("singular_information", skill, None,
                    f"skill {skill!r}: the information matrix is singular; standard errors use "
                    f"its pseudo-inverse and some are unreliable")
        return np.linalg.pinv(info)

    def _errors(self, order: list[int], se_rows: dict[int, dict[str, object]]) -> ItemErrors:
        n = len(order)
        kmax = self.items_.max_categories if n else 2
        a, b, c, d = (np.full(n, np.nan) for _ in range(4))
        th = np.full((n, kmax - 1), np.nan)
        for k, i in enumerate(order):
            row = se_rows.get(i)
            if row is None:
                continue
            a[k], b[k], c[k], d[k] = row["a"], row["b"], row["c"], row["d"]
            t = np.asarray(row["thresholds"], dtype=float)
            th[k, : t.size] = t
        method = "; ".join(sorted(self._se_methods)) or "none"
        return ItemErrors(a, b, c, d, th, method)


_DEFAULTS = MMLCalibrator().get_params()


# ---------------------------------------------------------------------- helpers
def _placeholder_bank(specs: list[ItemSpec], log: ResponseLog, model: str) -> Bank:
    """A bank with the specs' ids, models and category counts (for `ResponseLog.for_bank`)."""
    top = _top_category(log.data.item, log.data.response, len(log.item_ids))
    top_of = dict(zip(log.item_ids, top.tolist(), strict=True))
    items = []
    for s in specs:
        if s.model in DICHOTOMOUS_MODELS:
            items.append(ItemParams(s.item_id, s.model, 1.0, 0.0,
                                    0.2 if s.model in ("3pl", "4pl") else 0.0,
                                    0.99 if s.model == "4pl" else 1.0, skill=s.skill))
        else:
            k = s.n_categories or max(int(top_of.get(s.item_id, 1)) + 1, 2)
            items.append(ItemParams(s.item_id, s.model, 1.0,
                                    thresholds=tuple(float(v) for v in range(k - 1)),
                                    skill=s.skill))
    return Bank.from_params(items)


def _top_category(item: NDArray, response: NDArray, n_items: int) -> NDArray[np.int64]:
    """Highest observed category per item (0 for items without responses), in O(n)."""
    if item.size == 0:
        return np.zeros(n_items, dtype=np.int64)
    width = int(response.max()) + 1
    seen = np.bincount(item * width + response, minlength=n_items * width).reshape(n_items, width)
    return (width - 1 - np.argmax(seen[:, ::-1] > 0, axis=1)).astype(np.int64) * (seen.sum(1) > 0)


def _resolve_categories(specs: list[ItemSpec], data: SparseResponses,
                        source: Responses) -> list[ItemSpec]:
    top = _top_category(data.item, data.response, data.n_items)
    out = []
    for i, s in enumerate(specs):
        k = 2 if s.model in DICHOTOMOUS_MODELS else (s.n_categories or max(int(top[i]) + 1, 2))
        out.append(ItemSpec(s.item_id, s.model, s.skill, k))
    kcat = np.array([s.n_categories for s in out], dtype=np.int64)
    bad = (data.response < 0) | (data.response >= kcat[data.item])
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        s = out[int(data.item[j])]
        where = f"line {source.line_of(j)}" if isinstance(source, ResponseLog) else f"row {j}"
        raise ValueError(f"{where}: field 'response' = {data.response[j]} out of range for item "
                         f"{s.item_id!r} ({s.model}, categories 0..{kcat[data.item[j]] - 1})")
    return out


def _internal(item: ItemParams, kind: str) -> NDArray:
    a = item.a
    if kind == K.KIND_DICHOTOMOUS:
        c = min(max(item.c, 1e-18), 1 - 1e-12)
        gamma = math.log(c / (1 - c)) if item.model in ("3pl", "4pl") else -LOGIT_FIXED
        d = min(max(item.d, 1e-12), 1 - 1e-18)
        ups = math.log(d / (1 - d)) if item.model == "4pl" else LOGIT_FIXED
        return np.array([a, -a * item.b, gamma, ups])
    return np.concatenate([[a], -a * np.asarray(item.thresholds)])


def _rasch_scale(sk: _Skill) -> float:
    """σ of θ = σ z for a Rasch-family skill whose common slope ``a* = common_a σ`` was
    estimated on the standard grid; 1 otherwise (anchors fix the slope and estimate σ)."""
    if not sk.rasch:
        return 1.0
    for g in sk.groups:
        if g.tied.any():
            return float(g.phi[np.flatnonzero(g.tied)[0], 0]) / sk.common_a
    return 1.0


def _external(sk: _Skill, g: _Group, row: int, loc: int) -> ItemParams:
    """Item parameters on the reported scale (``a = common_a`` for the Rasch family:
    ``a* z + δ = common_a θ + δ`` with ``θ = σ z``, so ``b_k = −δ_k / common_a``)."""
    phi = g.phi[row]
    a = float(phi[0])
    iid, model = sk.item_ids[loc], sk.models[loc]
    if model in RASCH_MODELS:
        a = sk.common_a
    if g.kind == K.KIND_DICHOTOMOUS:
        c = float(K.sigmoid(phi[2])) if model in ("3pl", "4pl") else 0.0
        d = float(K.sigmoid(phi[3])) if model == "4pl" else 1.0
        return ItemParams(iid, model, a, -phi[1] / a, c, d, skill=sk.name)
    th = tuple(float(v) for v in -phi[1:] / a)
    return ItemParams(iid, model, a, thresholds=th, skill=sk.name)


def _logsumexp(v: NDArray) -> float:
    top = float(np.max(v))
    return top + math.log(float(np.sum(np.exp(v - top))))


def base_logw_of(sk: _Skill, nodes: NDArray) -> NDArray:
    """The normal log weights a skill used (its estimated mean and SD with anchors)."""
    mu, log_sd = (sk.latent[0], sk.latent[1]) if sk.free_latent else (0.0, 0.0)
    z = (nodes - mu) / math.exp(log_sd)
    lw = -0.5 * z * z
    return lw - _logsumexp(lw)


def _update_histogram(sk: _Skill, nq: NDArray, nodes: NDArray) -> None:
    """Empirical-histogram M-step: ``w_q ∝ Σ_p π_pq``, re-standardized to mean 0 and SD 1.

    Standardizing maps ``θ = μ + σ θ*``; the items follow (``a* = a σ``, ``δ* = δ + a μ``) and
    the density is carried to the fixed nodes by linear interpolation, ``f*(t) = σ f(μ + σ t)``.
    """
    w = nq / nq.sum()
    if not sk.free_latent:
        mu = float(w @ nodes)
        sd = math.sqrt(float(w @ (nodes - mu) ** 2))
        for g in sk.groups:
            a = g.phi[:, 0].copy()
            g.phi[:, 1:2 if g.kind == K.KIND_DICHOTOMOUS else None] += (a * mu)[:, None]
            g.phi[:, 0] *= sd
            _clip_phi(g)
        w = np.interp(mu + sd * nodes, nodes, w, left=0.0, right=0.0)
        w = w / w.sum()
    sk.hist = np.log(np.maximum(w, 1e-300))
    sk.hist -= _logsumexp(sk.hist)


def _n_parameters(sk: _Skill) -> int:
    """Free item parameters of a skill: the common slope counts once, and an RSM group's
    ``n (K − 1)`` free intercepts are ``n`` locations plus ``K − 2`` category parameters."""
    total = 0
    tied = 0
    for g in sk.groups:
        total += int(g.free.sum())
        tied += int(g.tied.sum())
        n_rsm = int(g.rsm.sum())
        if n_rsm:
            total -= n_rsm * (g.n_cat - 1) - (n_rsm + g.n_cat - 2)
    return total - max(tied - 1, 0)


def _parameter_names(sk: _Skill) -> list[str]:
    """Readable names of the packed free parameters (``item 'x' a``, ``item 'x' δ2``)."""
    names = []
    for g in sk.groups:
        cols = (["a", "intercept", "c logit", "d logit"] if g.kind == K.KIND_DICHOTOMOUS
                else ["a"] + [f"intercept {k}" for k in range(1, g.phi.shape[1])])
        rows, colidx = np.nonzero(g.free)
        for r_, c_ in zip(rows, colidx, strict=True):
            iid = sk.item_ids[int(g.local[r_])]
            names.append(f"item {iid!r} {cols[c_]} = {g.phi[r_, c_]:.4g}")
    extra = (sk.hist.size if sk.hist is not None else 2 if sk.free_latent else 0)
    names += [f"latent distribution parameter {k}" for k in range(extra)]
    return names


def _change_scale(sk: _Skill, size: int) -> NDArray:
    """What a parameter change is measured against for convergence: ``max(|a|, 1)`` for a slope
    (a relative change above 1, as on the log scale; absolute near 0, where the sign may
    flip), 1 for intercepts, logits and latent parameters."""
    parts = []
    for g in sk.groups:
        scale = np.ones_like(g.phi)
        scale[:, 0] = np.maximum(np.abs(g.phi[:, 0]), 1.0)
        parts.append(scale[g.free])
    out = np.concatenate(parts) if parts else np.zeros(0)
    return np.concatenate([out, np.ones(size - out.size)])


def _distance_to_fixed_point(history: list[NDArray], floor: float) -> NDArray:
    """Estimated distance of each parameter to the EM fixed point, from its steps in the last
    three cycles ``Δ_{t−2}, Δ_{t−1}, Δ_t``: a parameter that kept its direction contracts at
    ``ρ = (|Δ_t| / |Δ_{t−2}|)^{1/2}`` per cycle, and the rest of its way is the tail of a
    geometric series, ``|Δ_t| ρ / (1 − ρ)`` (Dempster, Laird & Rubin 1977: EM converges
    linearly), infinite when ``ρ ≥ 1`` (it drifts without slowing down: a slope running off
    along a flat ridge). A parameter that changed direction, or whose step is below ``floor``
    (single-precision E-steps make such steps noise), is taken at its last step."""
    step = np.abs(history[-1])
    if len(history) < 3:
        return step
    r0, r1, r2 = history
    steady = (np.sign(r0) == np.sign(r1)) & (np.sign(r1) == np.sign(r2)) & (step >= floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.sqrt(np.where(steady, step / np.maximum(np.abs(r0), 1e-300), 0.0))
        tail = np.where(rho < 1.0, step * rho / np.maximum(1.0 - rho, 1e-300), np.inf)
    return np.where(steady, np.maximum(tail, step), step)


def _clip_phi(g: _Group) -> None:
    phi, free = g.phi, g.free
    phi[:, 0] = np.where(free[:, 0], np.clip(phi[:, 0], g.a_lo, A_BOUND), phi[:, 0])
    if g.kind == K.KIND_DICHOTOMOUS:
        phi[:, 1] = np.where(free[:, 1], np.clip(phi[:, 1], -INTERCEPT_BOUND, INTERCEPT_BOUND),
                             phi[:, 1])
        phi[:, 2:] = np.where(free[:, 2:], np.clip(phi[:, 2:], -LOGIT_BOUND, LOGIT_BOUND),
                              phi[:, 2:])
    else:
        phi[:, 1:] = np.where(free[:, 1:], np.clip(phi[:, 1:], -INTERCEPT_BOUND,
                                                   INTERCEPT_BOUND), phi[:, 1:])


def _prior_terms(g: _Group, priors: Priors, phi: NDArray | None = None
                 ) -> tuple[NDArray, NDArray, NDArray]:
    """Log prior ``(n,)``, its gradient ``(n, m)`` and negative Hessian ``(n, m, m)``.

    Lognormal on a: ``−log a − (log a − μ)²/(2σ²)`` (``−∞`` for ``a ≤ 0``), gradient
    ``−(1 + (log a − μ)/σ²)/a``, curvature ``1/(σ² a²)`` (Gauss–Newton: the exact curvature in
    ``log a`` carried to ``a``); normal on ``b = −δ/a`` (Gauss–Newton curvature), beta on
    ``c = σ(γ)`` and ``d = σ(υ)``: ``(α − 1) log c + (β − 1) log(1 − c)`` with
    ``∂/∂γ = (α − 1)(1 − c) − (β − 1)c`` and ``−∂²/∂γ² = (α + β − 2) c(1 − c)``. Tied 1PL
    slopes carry one a-prior between them; the Rasch family's common slope (σ) carries none.
    """
    phi = g.phi if phi is None else phi
    n, m = phi.shape
    lp, grad, info = np.zeros(n), np.zeros((n, m)), np.zeros((n, m, m))
    a = phi[:, 0]
    if priors.a is not None and g.slope_prior:
        mu, sd = priors.a
        w = g.free[:, 0] * np.where(g.tied, 1.0 / max(int(g.tied.sum()), 1), 1.0)
        pos = a > 0
        la = np.log(np.where(pos, a, 1.0))
        safe = np.where(pos, a, 1.0)
        lp += np.where(pos | (w == 0), w * (-((la - mu) ** 2) / (2 * sd * sd) - la), -np.inf)
        grad[:, 0] += w * (-(la - mu) / (sd * sd) - 1.0) / safe
        info[:, 0, 0] += w / (sd * sd * safe * safe)
    if g.kind != K.KIND_DICHOTOMOUS:
        return lp, grad, info
    if priors.b is not None:
        mu, sd = priors.b
        f = g.free[:, 1].astype(float)
        safe = np.where(np.abs(a) > 1e-12, a, 1e-12)
        b = -phi[:, 1] / safe
        db = np.column_stack([-b / safe, -1.0 / safe])
        e = (b - mu) / (sd * sd)
        lp += f * (-((b - mu) ** 2) / (2 * sd * sd))
        grad[:, :2] += (f * -e)[:, None] * db
        info[:, :2, :2] += (f / (sd * sd))[:, None, None] * db[:, :, None] * db[:, None, :]
    for col, pair, has in ((2, priors.c, g.has_c), (3, priors.d, g.has_d)):
        if pair is None:
            continue
        al, be = pair
        f = (has & g.free[:, col]).astype(float)
        c = K.sigmoid(phi[:, col])
        cc = np.clip(c, 1e-300, 1.0)
        lp += f * ((al - 1) * np.log(cc) + (be - 1) * np.log(np.clip(1 - c, 1e-300, 1.0)))
        grad[:, col] += f * ((al - 1) * (1 - c) - (be - 1) * c)
        info[:, col, col] += f * (al + be - 2) * c * (1 - c)
    return lp, grad, info


def _newton_direction(g: _Group, grad: NDArray, info: NDArray) -> NDArray:
    """Fisher-scoring step for every (unlinked) item: batched ``m × m`` solves."""
    m = grad.shape[1]
    free = g.free
    eye = np.eye(m)
    h = np.where(free[:, :, None] & free[:, None, :], info, 0.0)
    h = h + eye * (~free)[:, :, None] + 1e-10 * eye
    gr = np.where(free, grad, 0.0)
    return np.linalg.solve(h, gr[..., None])[..., 0]


def _subgroup(g: _Group, rows: NDArray[np.int64]) -> _Group:
    return _Group(g.kind, g.n_cat, g.local[rows], g.phi[rows].copy(), g.free[rows],
                  g.tied[rows], g.has_c[rows], g.has_d[rows], g.rsm[rows], g.a_lo[rows],
                  g.slope_prior)


def _m_step_skill(groups: list[_Group], rs: list[NDArray], nodes: NDArray,
                  priors: Priors) -> None:
    """The M-step of a skill: items with their own parameters one by one (vectorized), items
    linked by shared parameters (common slope, rating-scale categories) jointly."""
    linked: list[tuple[_Group, NDArray[np.int64], NDArray]] = []
    for g, r in zip(groups, rs, strict=True):
        lk = g.tied | g.rsm
        if not lk.any():
            _m_step(g, r, nodes, priors)
            continue
        if not lk.all():
            rows = np.flatnonzero(~lk)
            sub = _subgroup(g, rows)
            _m_step(sub, r[rows], nodes, priors)
            g.phi[rows] = sub.phi
        rows = np.flatnonzero(lk)
        linked.append((g, rows, r[rows]))
    if linked:
        _m_step_linked(linked, nodes, priors)


def _m_step_linked(parts: list[tuple[_Group, NDArray[np.int64], NDArray]], nodes: NDArray,
                   priors: Priors) -> None:
    """One safeguarded Newton step for items linked by shared parameters, across groups.

    Every item's internal parameters are ``φ_i = S s + D_i d_i``: ``s`` the shared parameters
    (the common slope; per RSM group the category parameters ``u`` with ``t = C u``,
    ``C = [I; −1ᵀ]`` so ``Σ_k t_k = 0``) and ``d_i`` the item's own (its intercepts; an RSM
    item's location β_i). With ``H_i`` the Fisher information of ``φ_i`` the Newton system is
    arrow-shaped; eliminating each ``d_i`` (Schur complement) leaves
    ``(Σ_i Sᵀ H_i S − Sᵀ H_i D_i (D_iᵀ H_i D_i)⁻¹ D_iᵀ H_i S) Δs = Σ_i (Sᵀ g_i − …)``, then
    ``Δd_i = (D_iᵀ H_i D_i)⁻¹ D_iᵀ (g_i − H_i S Δs)``. The step is capped at `MAX_STEP` and
    halved until the joint (penalized) objective does not fall.
    """
    tied_any = any(bool(g.tied[rows].any()) for g, rows, _ in parts)
    size = 1 if tied_any else 0
    offsets = []
    for g, rows, _ in parts:
        if g.rsm[rows].any() and g.n_cat > 2:
            offsets.append(size)
            size += g.n_cat - 2
        else:
            offsets.append(-1)
    big_a = np.zeros((size, size))
    big_b = np.zeros(size)
    work = []
    base = 0.0
    for (g, rows, r), off in zip(parts, offsets, strict=True):
        sub = _subgroup(g, rows)
        p, jac = K.probabilities(g.kind, sub.phi, nodes)
        grad, info = K.score_and_information(p, jac, r)
        lp, lg, li = _prior_terms(sub, priors)
        base += float(K.objective_terms(p, r).sum() + lp.sum())
        grad, info = grad + lg, info + li
        m = sub.phi.shape[1]
        smap = np.zeros((m, size))
        if sub.tied.any():
            smap[0, 0] = 1.0
        if g.rsm[rows].any():
            dmap = np.zeros((m, 1))
            dmap[1:, 0] = 1.0
            if off >= 0:
                k = g.n_cat - 2
                smap[1:, off:off + k] = np.vstack([np.eye(k), -np.ones((1, k))])
        else:
            cols = [c for c in range(1, m) if sub.free[0, c]]
            dmap = np.zeros((m, len(cols)))
            dmap[cols, np.arange(len(cols))] = 1.0
        gs, gd = grad @ smap, grad @ dmap
        h_ss = np.einsum("ms,nml,lt->nst", smap, info, smap)
        h_sd = np.einsum("ms,nml,ld->nsd", smap, info, dmap)
        h_dd = np.einsum("md,nml,le->nde", dmap, info, dmap)
        nd = dmap.shape[1]
        rhs = np.concatenate([gd[:, :, None], np.transpose(h_sd, (0, 2, 1))], axis=2)
        x = np.linalg.solve(h_dd + 1e-10 * np.eye(nd), rhs)  # (n, nd, 1 + S)
        big_a += (h_ss - h_sd @ x[:, :, 1:]).sum(axis=0)
        big_b += (gs - np.einsum("nsd,nd->ns", h_sd, x[:, :, 0])).sum(axis=0)
        work.append((g, rows, r, sub, smap, dmap, x))
    if size:
        try:
            ds = np.linalg.solve(big_a + 1e-10 * np.eye(size), big_b)
        except np.linalg.LinAlgError:
            ds = np.linalg.lstsq(big_a, big_b, rcond=None)[0]
    else:
        ds = np.zeros(0)
    steps = []
    for _g, _rows, _r, _sub, smap, dmap, x in work:
        dd = x[:, :, 0] - x[:, :, 1:] @ ds
        steps.append(smap @ ds + dd @ dmap.T)
    largest = max(float(np.max(np.abs(st))) if st.size else 0.0 for st in steps)
    scale = MAX_STEP / largest if largest > MAX_STEP else 1.0
    for _ in range(MAX_HALVINGS):
        total = 0.0
        trials = []
        for (g, _rows, r, sub, _s, _d, _x), st in zip(work, steps, strict=True):
            trial = _subgroup(sub, np.arange(sub.phi.shape[0]))
            trial.phi += scale * st
            _clip_phi(trial)
            if not np.all(K.valid(g.kind, trial.phi)):
                total = -np.inf
                break
            p2, _ = K.probabilities(g.kind, trial.phi, nodes, jacobian=False)
            total += float(K.objective_terms(p2, r).sum() + _prior_terms(trial, priors)[0].sum())
            trials.append(trial)
        if np.isfinite(total) and total >= base - 1e-12 * abs(base):
            for (g, rows, *_rest), trial in zip(work, trials, strict=True):
                g.phi[rows] = trial.phi
            return
        scale *= 0.5


def _m_step(g: _Group, r: NDArray, nodes: NDArray, priors: Priors) -> None:
    """One safeguarded Fisher-scoring step of the M-step objective for all items of a group.

    ``r`` holds the expected counts ``(n, K, Q)``. Steps are capped at `MAX_STEP` and halved
    (per item) until the penalized objective does not fall.
    """
    n = g.phi.shape[0]
    p, jac = K.probabilities(g.kind, g.phi, nodes)
    assert jac is not None  # jacobian=True (the default)
    grad, info = K.score_and_information(p, jac, r)
    lp, lg, li = _prior_terms(g, priors)
    obj = K.objective_terms(p, r) + lp
    step = _newton_direction(g, grad + lg, info + li)
    size = np.max(np.abs(step), axis=1)
    scale = np.where(size > MAX_STEP, MAX_STEP / np.maximum(size, 1e-300), 1.0)
    accepted = np.zeros(n, dtype=bool)
    new = g.phi.copy()
    trial = _Group(g.kind, g.n_cat, g.local, g.phi.copy(), g.free, g.tied, g.has_c, g.has_d,
                   g.rsm, g.a_lo, g.slope_prior)
    for _ in range(MAX_HALVINGS):
        trial.phi[:] = g.phi + scale[:, None] * step
        _clip_phi(trial)
        ok = K.valid(g.kind, trial.phi)
        p2, _ = K.probabilities(g.kind, np.where(ok[:, None], trial.phi, g.phi), nodes,
                                jacobian=False)
        obj2 = K.objective_terms(p2, r) + _prior_terms(trial, priors)[0]
        obj2 = np.where(ok & np.isfinite(obj2), obj2, -np.inf)
        good = ~accepted & (obj2 >= obj - 1e-12 * np.abs(obj))
        new[good] = trial.phi[good]
        accepted |= good
        if accepted.all():
            break
        scale = np.where(accepted, scale, 0.5 * scale)
    g.phi[:] = new


def _delta_method(g: _Group, row: int, cov: NDArray, sk: _Skill | None = None
                  ) -> dict[str, object]:
    """Standard errors of ``a, b, c, d, b_k`` from the internal covariance (delta method).

    ``b = −δ/a``: ``∂b/∂a = −b/a``, ``∂b/∂δ = −1/a``. Rasch family: ``a`` is fixed at
    ``common_a`` and ``b_k = −δ_k/common_a`` does not involve the estimated ``a* = common_a σ``.
    """
    phi, free = g.phi[row], g.free[row]
    rasch = sk is not None and sk.models[int(g.local[row])] in RASCH_MODELS
    a = sk.common_a if rasch and sk is not None else float(phi[0])
    v = cov
    nan = float("nan")

    def sd(x: float) -> float:
        return math.sqrt(x) if x > 0 else nan

    if rasch:
        ths = tuple(sd(v[k, k]) / abs(a) if free[k] else nan for k in range(1, phi.shape[0]))
        if g.kind == K.KIND_DICHOTOMOUS:
            return {"a": nan, "b": ths[0], "c": nan, "d": nan, "thresholds": ()}
        return {"a": nan, "b": nan, "c": nan, "d": nan, "thresholds": ths}
    se_a = sd(v[0, 0]) if free[0] else nan
    if g.kind == K.KIND_DICHOTOMOUS:
        b = -phi[1] / a
        se_b = sd(b * b * v[0, 0] / a**2 + v[1, 1] / a**2 + 2 * b / a**2 * v[0, 1]) \
            if free[0] or free[1] else nan
        c = float(K.sigmoid(phi[2]))
        d = float(K.sigmoid(phi[3]))
        se_c = c * (1 - c) * sd(v[2, 2]) if free[2] else nan
        se_d = d * (1 - d) * sd(v[3, 3]) if free[3] else nan
        return {"a": se_a, "b": se_b, "c": se_c, "d": se_d, "thresholds": ()}
    se_steps: list[float] = []
    for k in range(1, phi.shape[0]):
        bk = -phi[k] / a
        se_steps.append(sd(bk * bk * v[0, 0] / a**2 + v[k, k] / a**2 + 2 * bk / a**2 * v[0, k])
                   if free[0] or free[k] else nan)
    return {"a": se_a, "b": nan, "c": nan, "d": nan, "thresholds": tuple(se_steps)}


# ---------------------------------------------------------------------- standard errors
def _log_table(sk: _Skill, nodes: NDArray) -> NDArray:
    """``log P_ik(θ_q)`` of every item of a skill, ``(items, K, Q)`` (the E-step's table)."""
    out = np.zeros((sk.items.size, sk.kmax, nodes.size))
    for g in sk.groups:
        p, _ = K.probabilities(g.kind, g.phi, nodes, jacobian=False)
        out[g.local, : g.n_cat, :] = np.log(np.maximum(np.transpose(p, (0, 2, 1)), K.P_FLOOR))
    return out


def _parameter_index(sk: _Skill) -> tuple[list[NDArray], int]:
    """Global index of every free internal parameter per group (−1 when fixed).

    The skill's common slope (tied 1PL slopes; the Rasch family's ``a* = common_a σ``) is one
    parameter shared by every group of the skill, as in the M-step: a Rasch skill mixing
    category counts (PCM items with 3 and 4 categories are separate groups) still has one
    slope. The map is built once per skill, here, and used by every information path."""
    index: list[NDArray] = []
    nxt = 0
    shared = -1
    for g in sk.groups:
        idx = np.full(g.phi.shape, -1, dtype=np.int64)
        for row in range(g.phi.shape[0]):
            for col in range(g.phi.shape[1]):
                if not g.free[row, col]:
                    continue
                if col == 0 and g.tied[row]:
                    if shared < 0:
                        shared, nxt = nxt, nxt + 1
                    idx[row, col] = shared
                else:
                    idx[row, col], nxt = nxt, nxt + 1
        index.append(idx)
    return index, nxt


def _constraint_jacobian(sk: _Skill, index: list[NDArray], n_par: int) -> NDArray | None:
    """``J`` ``(n_par × n_struct)``: the indexed internal parameters as a linear function of
    the skill's structural parameters, or None when they are the same (no RSM items).

    An RSM item's intercepts are ``δ_ik = β_i + t_k`` (Andrich 1978) with the category
    parameters ``t = C u``, ``C = [I; −1ᵀ]`` (so ``Σ_k t_k = 0``) shared by the RSM items of
    its group, as the M-step estimates them (`_m_step_linked`): ``∂δ_ik/∂β_i = 1`` and
    ``∂δ_ik/∂u = C[k]``. Every other indexed parameter maps to itself.
    """
    if not any(g.rsm.any() and g.kind != K.KIND_DICHOTOMOUS for g in sk.groups):
        return None
    rsm_cells = np.zeros(n_par, dtype=bool)
    for g, idx in zip(sk.groups, index, strict=True):
        if g.kind != K.KIND_DICHOTOMOUS:
            cells = idx[g.rsm, 1:]
            rsm_cells[cells[cells >= 0]] = True
    cols: list[NDArray] = []  # one column per structural parameter
    for j in np.flatnonzero(~rsm_cells):
        e = np.zeros(n_par)
        e[j] = 1.0
        cols.append(e)
    for g, idx in zip(sk.groups, index, strict=True):
        if g.kind == K.KIND_DICHOTOMOUS or not g.rsm.any():
            continue
        rows = np.flatnonzero(g.rsm)
        steps = idx[rows, 1:]  # (n_rsm, K − 1), all free
        for r in range(rows.size):  # the locations β_i
            e = np.zeros(n_par)
            e[steps[r]] = 1.0
            cols.append(e)
        n_cat = g.n_cat
        c_mat = np.vstack([np.eye(n_cat - 2), -np.ones((1, n_cat - 2))])  # (K − 1, K − 2)
        for u in range(n_cat - 2):  # the shared category parameters
            e = np.zeros(n_par)
            for r in range(rows.size):
                e[steps[r]] = c_mat[:, u]
            cols.append(e)
    return np.column_stack(cols)


def _blocks_of(sk: _Skill, index: list[NDArray], cov: NDArray) -> list[NDArray]:
    """The per-item ``(n, m, m)`` blocks of a full covariance matrix, per group."""
    out = []
    for g, idx in zip(sk.groups, index, strict=True):
        m = g.phi.shape[1]
        safe = np.where(idx >= 0, idx, 0)
        block = cov[safe[:, :, None], safe[:, None, :]]
        ok = (idx >= 0)[:, :, None] & (idx >= 0)[:, None, :]
        out.append(np.where(ok, block, 0.0).reshape(g.phi.shape[0], m, m))
    return out


def _dense_scores(sk: _Skill, post: NDArray, nodes: NDArray, index: list[NDArray],
                  design: _Design, n_par: int) -> NDArray:
    """Per-person marginal scores ``S`` ``(N, P)`` of dense dichotomous data by BLAS:
    ``s_p,ic = x_pi (π_p · ∂_c log P_i1) + (m_pi − x_pi)(π_p · ∂_c log P_i0)``.

    With 0/1 indicators the sum is a choice: ``π_p · ∂_c log P_i1`` where ``x_pi = 1``, else
    ``π_p · ∂_c log P_i0`` (0 where unobserved), so it is taken in place, and the items' columns
    land in ``S`` by one strided copy when their parameters are numbered at a regular step (as
    `_parameter_index` numbers them)."""
    s = np.zeros((post.shape[0], n_par))
    n_s = design.x.shape[1]
    for g, idx in zip(sk.groups, index, strict=True):
        p, jac = K.probabilities(g.kind, g.phi, nodes)
        dlog = K.log_derivatives(p, jac)  # (n, K, Q, m)
        whole = g.local.size == n_s and bool(np.all(g.local == np.arange(n_s)))
        x = design.x if whole else design.x[:, g.local]
        correct = x != 0
        unseen = None if design.mask is None else \
            (design.mask if whole else design.mask[:, g.local]) == 0
        for col in np.flatnonzero((idx >= 0).any(axis=0)):
            contrib = post @ dlog[:, 0, :, col].T
            np.copyto(contrib, post @ dlog[:, 1, :, col].T, where=correct)
            if unseen is not None:
                contrib[unseen] = 0.0
            ok = idx[:, col] >= 0
            tied = ok & g.tied if col == 0 else np.zeros_like(ok)
            plain = ok & ~tied
            target = idx[plain, col]
            step = int(target[1] - target[0]) if target.size > 1 else 1
            if plain.all() and step > 0 and np.array_equal(
                    target, target[0] + step * np.arange(target.size)):
                s[:, target[0]: target[-1] + 1: step] = contrib
            else:
                s[:, target] += contrib[:, plain]
            if tied.any():
                s[:, idx[tied, col][0]] += contrib[:, tied].sum(axis=1)
    return s


def _dense_item_blocks(s: NDArray, idx: NDArray) -> NDArray:
    """``S[:, i]ᵀ S[:, i]`` for every item's free columns ``(n, m, m)`` (0 where fixed)."""
    n, m = idx.shape
    out = np.zeros((n, m, m))
    safe = np.where(idx >= 0, idx, 0)
    ok = (idx >= 0).astype(float)
    step = max(1, int(4e6 // max(s.shape[0] * m, 1)))
    for lo in range(0, n, step):
        cols = s[:, safe[lo:lo + step]] * ok[lo:lo + step]  # (N, rows, m)
        out[lo:lo + step] = np.einsum("pia,pib->iab", cols, cols)
    return out


@dataclass(frozen=True, eq=False)
class _Scores:
    """Per-response contributions ``c_j = Σ_q π_{p_j q} ∂ log P_{i_j x_j}(θ_q)/∂φ`` of a group:
    ``person``, the item's ``row`` in the group, and ``values`` ``(n_j, m)`` (0 where fixed)."""

    person: NDArray[np.int64]
    row: NDArray[np.int64]
    values: NDArray[np.float64]


def _response_scores(sk: _Skill, post: NDArray, nodes: NDArray, index: list[NDArray]
                     ) -> list[_Scores]:
    """Each person's marginal score ``s_p = Σ_{j ∈ p} c_j`` is a sum of these (Mislevy 1986).

    Responses are bucketed by (item, category) with one counting sort; a bucket's
    contributions are one product ``π[persons] · ∂ log P_ik`` ``(n_b × Q)·(Q × m)``.
    """
    kmax = sk.kmax
    key = sk.item * kmax + sk.response
    order = np.argsort(key, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=sk.items.size * kmax))])
    out = []
    for g, idx in zip(sk.groups, index, strict=True):
        m = g.phi.shape[1]
        used = np.flatnonzero((idx >= 0).any(axis=0))
        total = int(np.sum(bounds[(g.local + 1) * kmax] - bounds[g.local * kmax]))
        person = np.empty(total, dtype=np.int64)
        row = np.empty(total, dtype=np.int64)
        values = np.zeros((total, m))
        if used.size:
            p, jac = K.probabilities(g.kind, g.phi, nodes)
            dlog = K.log_derivatives(p, jac)[..., used]  # (n, K, Q, u)
        pos = 0
        for r, loc in enumerate(g.local):
            for k in range(g.n_cat):
                lo, hi = bounds[int(loc) * kmax + k], bounds[int(loc) * kmax + k + 1]
                if hi == lo:
                    continue
                who = sk.person[order[lo:hi]]
                sl = slice(pos, pos + who.size)
                person[sl], row[sl] = who, r
                if used.size:
                    values[sl][:, used] = post[who] @ dlog[r, k]
                pos += who.size
        out.append(_Scores(person, row, values))
    return out


def _xpd_work(sk: _Skill, n_par: int, dense: bool) -> tuple[bool, float]:
    """Whether the full XPD fits as a dense ``S`` (BLAS), and the sparse ``SᵀS`` work."""
    n_p = sk.person_global.size
    as_dense = dense or (n_p * n_par <= DENSE_SCORES_MAX
                         and float(n_p) * n_par * n_par <= DENSE_XPD_WORK_MAX)
    per_item = max(n_par / max(sk.items.size, 1), 1.0)
    counts = np.bincount(sk.person, minlength=n_p).astype(float) * per_item
    return as_dense, float(np.sum(counts * counts))


def _xpd_full(scores: list[_Scores], index: list[NDArray], n_p: int, n_par: int,
              as_dense: bool) -> NDArray:
    """``Σ_p s_p s_pᵀ`` with ``s_p`` summed from the per-response contributions."""
    rows, cols, vals = [], [], []
    for sc, idx in zip(scores, index, strict=True):
        gi = idx[sc.row]  # (n_j, m) global index or −1
        ok = gi >= 0
        rows.append(np.broadcast_to(sc.person[:, None], gi.shape)[ok])
        cols.append(gi[ok])
        vals.append(sc.values[ok])
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    if as_dense:
        s = np.bincount(r * n_par + c, weights=v, minlength=n_p * n_par).reshape(n_p, n_par)
        return s.T @ s
    import scipy.sparse as sp  # here, not at import: scipy costs ~0.1 s of start-up

    s = sp.csr_matrix((v, (r, c)), shape=(n_p, n_par))
    return np.asarray((s.T @ s).toarray())


def _shared_slope_scores(sk: _Skill, scores: list[_Scores]) -> NDArray:
    """Each person's score for the skill's common slope: the sum over the tied items of every
    group the person answered (one parameter across groups, as `_parameter_index` has it)."""
    out = np.zeros(sk.person_global.size)
    for g, sc in zip(sk.groups, scores, strict=True):
        if g.tied.any():
            tied = g.tied[sc.row]
            out += np.bincount(sc.person[tied], sc.values[tied, 0],
                               minlength=sk.person_global.size)
    return out


def _xpd_item_blocks(sk: _Skill, g: _Group, idx: NDArray, sc: _Scores,
                     shared: NDArray | None = None) -> NDArray:
    """Item blocks ``Σ_p s_p,i s_p,iᵀ`` ``(n, m, m)``: one bincount per entry; a tied 1PL
    slope uses its shared score (the sum over the tied items a person answered, in every
    group: `_shared_slope_scores`; this group's alone when not given)."""
    n, m = g.phi.shape
    out = np.zeros((n, m, m))
    vals = sc.values
    for a_ in range(m):
        for b_ in range(a_, m):
            out[:, a_, b_] = out[:, b_, a_] = np.bincount(sc.row, vals[:, a_] * vals[:, b_],
                                                          minlength=n)
    if g.tied.any():
        tied = g.tied[sc.row]
        if shared is None:
            shared = np.bincount(sc.person[tied], vals[tied, 0],
                                 minlength=sk.person_global.size)
        per = shared[sc.person]
        out[g.tied, 0, 0] = float(shared @ shared)
        for b_ in range(1, m):
            col = np.bincount(sc.row[tied], per[tied] * vals[tied, b_], minlength=n)
            out[g.tied, 0, b_] = out[g.tied, b_, 0] = col[g.tied]
    return out


def _oakes_information(sk: _Skill, nodes: NDArray, priors: Priors, index: list[NDArray],
                       n_par: int, design: _Design, jac: NDArray | None = None) -> NDArray:
    """Oakes' (1999) observed information of the (penalized) marginal likelihood.

    ``I(φ̂) = −[∂²Q(φ | φ′)/∂φ∂φᵀ + ∂²Q(φ | φ′)/∂φ∂φ′ᵀ]`` at ``φ = φ′ = φ̂``, where
    ``Q(φ | φ′) = Σ_p Σ_q π_pq(φ′) log P(x_p | θ_q; φ) + log prior(φ)`` is the EM objective.
    Its gradient in φ is the M-step gradient ``g(φ; r(φ′))`` of the expected counts ``r``, so
    the first term is the complete-data Hessian (item-separable: one central difference per
    parameter column moves every item at once) and the second is the change of ``g(φ̂; ·)``
    when the posterior's parameters move (one pair of E-steps per parameter). This is mirt's
    default ``SE.type = "Oakes"`` (Chalmers 2018); unlike the cross-product (XPD) it is the
    observed information itself, not an estimate of it that is biased upward at small N.

    With a constraint Jacobian ``J`` (RSM items, `_constraint_jacobian`) the information of
    the structural parameters ``s`` (``φ = J s``, linear) is returned, ``Jᵀ I(φ̂) J``: the
    complete-data Hessian is projected, and the posterior's parameters move along the columns
    of ``J`` (one pair of E-steps per structural parameter, fewer than per intercept).
    """
    h = OAKES_STEP
    d64 = design if design.dtype == np.float64 else _Design(
        sk.person, sk.item, sk.response, sk.person_global.size, sk.items.size, sk.kmax,
        design.dense, dtype=np.float64)
    logw = sk.hist if sk.hist is not None else base_logw_of(sk, nodes)
    saved = [g.phi.copy() for g in sk.groups]

    def set_x(x: NDArray) -> None:
        for g, idx, phi0 in zip(sk.groups, index, saved, strict=True):
            ok = idx >= 0
            g.phi[:] = phi0
            g.phi[ok] = x[idx[ok]]

    def group_grad(g: _Group, r: NDArray) -> NDArray:
        p, jac = K.probabilities(g.kind, g.phi, nodes)
        grad, _ = K.score_and_information(p, jac, r[g.local, : g.n_cat, :])
        return grad + _prior_terms(g, priors)[1]

    def scatter(grads: list[NDArray]) -> NDArray:
        out = np.zeros(n_par)
        for grad, idx in zip(grads, index, strict=True):
            ok = idx >= 0
            np.add.at(out, idx[ok], grad[ok])
        return out

    x_hat = np.zeros(n_par)
    for g, idx in zip(sk.groups, index, strict=True):
        ok = idx >= 0
        x_hat[idx[ok]] = g.phi[ok]
    info = np.zeros((n_par, n_par))
    try:
        _, _, r_hat = d64.estep(_log_table(sk, nodes), logw)
        # ∂²Q/∂φ∂φᵀ at fixed counts: the complete-data Hessian, block-diagonal by item
        for g, idx in zip(sk.groups, index, strict=True):
            for c in range(g.phi.shape[1]):
                moved = idx[:, c]
                if not np.any(moved >= 0):
                    continue
                diffs = []
                for sign in (1.0, -1.0):
                    x = x_hat.copy()
                    x[np.unique(moved[moved >= 0])] += sign * h
                    set_x(x)
                    diffs.append(group_grad(g, r_hat))
                dg = (diffs[0] - diffs[1]) / (2 * h)  # (n, m): ∂g_i,a/∂φ_i,c
                rows = np.flatnonzero(moved >= 0)
                for a_ in range(g.phi.shape[1]):
                    ok = idx[rows, a_] >= 0
                    np.add.at(info, (idx[rows[ok], a_], moved[rows[ok]]), -dg[rows[ok], a_])
        set_x(x_hat)
        # ∂²Q/∂φ∂φ′ᵀ: the M-step gradient at φ̂ under the posterior of moved parameters
        n_dir = n_par if jac is None else jac.shape[1]
        cross = np.zeros((n_par, n_dir))
        for j in range(n_dir):
            pair = []
            for sign in (1.0, -1.0):
                x = x_hat.copy()
                if jac is None:
                    x[j] += sign * h
                else:
                    x += sign * h * jac[:, j]
                set_x(x)
                _, _, r = d64.estep(_log_table(sk, nodes), logw)
                set_x(x_hat)
                pair.append(scatter([group_grad(g, r) for g in sk.groups]))
            cross[:, j] = (pair[0] - pair[1]) / (2 * h)
    finally:
        for g, phi0 in zip(sk.groups, saved, strict=True):
            g.phi[:] = phi0
    info = info - cross if jac is None else jac.T @ (info @ jac - cross)
    return 0.5 * (info + info.T)


class _Design:
    """The response data of one skill in the form the E-step multiplies with.

    Sparse: a CSR one-hot ``Y`` (persons × items·K). Dense dichotomous: the
    0/1 matrix ``X`` and the observed mask ``M`` (None when complete), for BLAS products.
    Large problems multiply in single precision (the indicators are exact; the log-probability
    table and the posterior carry ~1e-7 relative error, far below any standard error) and
    accumulate everything else in double precision.
    """

    def __init__(self, person: NDArray, item: NDArray, response: NDArray, n_p: int, n_s: int,
                 kmax: int, dense: bool, dtype: type | None = None) -> None:
        self.n_s, self.kmax, self.dense = n_s, kmax, dense
        work = n_p * n_s if dense else response.size
        self.dtype = dtype or (np.float32 if work >= SINGLE_PRECISION_MIN else np.float64)
        if dense:
            self.x: NDArray = np.zeros((n_p, n_s), dtype=self.dtype)
            self.x[person, item] = response
            self.complete = response.size == n_p * n_s
            self.mask: NDArray | None = None
            if not self.complete:
                self.mask = np.zeros((n_p, n_s), dtype=self.dtype)
                self.mask[person, item] = 1.0
        else:
            import scipy.sparse as sp  # here, not at import: scipy costs ~0.1 s of start-up

            y = sp.csr_matrix((np.ones(response.size, dtype=self.dtype),
                               (person, item * kmax + response)), shape=(n_p, n_s * kmax))
            y.sum_duplicates()
            self.y = y

    def estep(self, table: NDArray, logw: NDArray) -> tuple[NDArray, float, NDArray]:
        """Posterior ``(persons, Q)``, marginal log-likelihood and counts ``(items, K, Q)``."""
        q = table.shape[2]
        dt = self.dtype
        if self.dense:
            lp0 = table[:, 0, :]
            ll = np.asarray(self.x @ (table[:, 1, :] - lp0).astype(dt), dtype=np.float64)
            ll += lp0.sum(axis=0) if self.complete \
                else np.asarray(cast(NDArray, self.mask) @ lp0.astype(dt), dtype=np.float64)
        else:
            flat: NDArray = np.ascontiguousarray(table.reshape(self.n_s * self.kmax, q), dtype=dt)
            ll = np.asarray(self.y @ flat, dtype=np.float64)
        ll += logw
        top = ll.max(axis=1, keepdims=True)
        np.subtract(ll, top, out=ll)
        np.exp(ll, out=ll)
        total = ll.sum(axis=1, keepdims=True)
        loglik = float(top.sum() + np.log(total).sum())
        ll /= total
        post = ll
        post_dt = post if dt == np.float64 else post.astype(dt)
        if self.dense:
            r1 = np.asarray(self.x.T @ post_dt, dtype=np.float64)
            nq = post.sum(axis=0)[None, :] if self.complete \
                else np.asarray(cast(NDArray, self.mask).T @ post_dt, dtype=np.float64)
            r = np.stack([nq - r1, r1], axis=1)
        else:
            # Yᵀ as a CSC view streams the persons in order and scatters into the small
            # (items·K × Q) result, far faster than a CSR transpose that gathers posterior rows
            r = np.asarray(self.y.T @ post_dt, dtype=np.float64).reshape(self.n_s, self.kmax, q)
        return post, loglik, r
