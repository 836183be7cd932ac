"""Conditional maximum likelihood (CML) for the Rasch family: Rasch, partial credit, rating scale.

In the Rasch family the raw score ``r = Σ_i x_i`` is sufficient for θ, so the probability of a
response pattern given its score does not involve θ (Andersen 1970, 1977). With the partial credit
model ``P(X_i = k | θ) ∝ exp(kθ − δ_ik)``, ``δ_ik = Σ_{v≤k} b_iv`` (``δ_i0 = 0``; the ``b_iv`` are
the step difficulties; Masters 1982) and ``ε_ik = exp(−δ_ik)``:

    P(x | r) = Π_i ε_{i,x_i} / γ_r(ε),      γ_r = Σ_{y: Σy = r} Π_i ε_{i,y_i},

where ``γ_r`` are the elementary symmetric functions (ESFs) of the item parameters. The conditional
log-likelihood of ``N`` persons is ``ℓ = −Σ_ik n_ik δ_ik − Σ_r N_r log γ_r`` (``n_ik`` persons in
category k of item i, ``N_r`` persons with score r); persons with the lowest or highest possible
score contribute 0. Its derivatives are moments of the conditional distribution given r:

    ∂ℓ/∂δ_ik = −n_ik + Σ_r N_r π_ik|r,        π_ik|r = ε_ik γ^(−i)_{r−k} / γ_r,
    −∂²ℓ/∂δ_ik∂δ_jl = Σ_r N_r [P(X_i = k, X_j = l | r) − π_ik|r π_jl|r],
    P(X_i = k, X_j = l | r) = ε_ik ε_jl γ^(−i,−j)_{r−k−l} / γ_r  (i ≠ j),
    P(X_i = k, X_i = l | r) = 1[k = l] π_ik|r,

with ``γ^(−i)`` and ``γ^(−i,−j)`` the ESFs of the test without item i (and j). All of them come
from the *summation algorithm* (Fischer 1974; Verhelst, Glas & van der Sluis 1984; Baker & Harwell
1996): ``γ`` of a set of items is the convolution of the items' vectors ``(1, ε_i1, …, ε_im_i)``,
built by prefix products ``F_i`` (items before i) and suffix products ``B_i`` (items after i):
``γ^(−i) = F_i ∗ B_{i+1}``, ``γ^(−i,−j) = F_i ∗ (items i+1 … j−1) ∗ B_{j+1}``. Everything is
vectorized over items (and over item pairs at a fixed distance ``j − i``).

The estimates maximise ``ℓ`` by Newton–Raphson with the exact Hessian (step halving keeps ``ℓ``
from falling), and their covariance is the inverse of the conditional information at the maximum.

* **Rasch / PCM.** Free parameters are all ``δ_ik`` but the first (``δ_11 = 0``).
* **RSM** (Andrich 1978): ``b_ik = β_i + τ_k``, so ``δ_ik = k β_i + κ_k`` with
  ``κ_k = Σ_{v≤k} τ_v``; ``β_1 = 0`` and ``κ_1 = 0`` identify it (``I + m − 2`` free
  parameters, as in eRm/psychotools).

Reported thresholds are centred so that all step thresholds sum to 0 (psychotools'
``threshpar(type = "mode")``); their covariance is carried through that linear map.

**Missing data.** Persons are grouped by the set of items they answered, and each group has its own
ESFs over its own items (the conditional likelihood is a product over groups), as psychotools'
``raschmodel``/``pcmodel``/``rsmodel`` do (Zeileis, Strobl, Wickelmaier et al., psychotools).

Person abilities are then estimated by ML or Warm's WLE with the items fixed
(`irt.estimation.mle`/`irt.estimation.wle`).

References: Andersen (1970, 1977); Fischer (1974); Andrich (1978); Masters (1982); Verhelst, Glas &
van der Sluis (1984); Baker & Harwell (1996); Mair & Hatzinger (2007, the R package eRm); Zeileis
et al. (the R package psychotools).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.results import CML_MODELS, ItemErrors
from irt import AbilityEstimates, Bank, ItemParams, SparseResponses, mle, wle
from irt.io import ResponseLog

logger = logging.getLogger(__name__)

PERSON_METHODS = ("wle", "mle")
#: Newton–Raphson: tolerance on the largest parameter change, iteration cap, step halvings.
NEWTON_TOL = 1e-10
NEWTON_MAX_ITER = 100
MAX_HALVINGS = 30
#: Largest Newton step (logits) per iteration, for stability far from the maximum.
MAX_STEP = 3.0

Responses = SparseResponses | ResponseLog | ArrayLike


@dataclass(frozen=True, eq=False)
class _PatternGroup:
    """Persons who answered the same set of items: their items, score counts ``N_r``."""

    items: NDArray[np.int64]  # global item positions, increasing
    score_counts: NDArray[np.float64]  # (R + 1,)


@dataclass(frozen=True, eq=False)
class _Derivatives:
    loglik: float
    grad: NDArray[np.float64]  # ∂ℓ/∂δ, (n_delta,)
    info: NDArray[np.float64] | None  # −∂²ℓ/∂δ∂δᵀ, (n_delta, n_delta)


class CMLCalibrator:
    """Conditional maximum likelihood calibration of a Rasch, partial credit or rating scale model.

    Parameters
    ----------
    model : ``"rasch"`` (dichotomous items), ``"pcm"`` (partial credit, any number of categories
        per item) or ``"rsm"`` (rating scale: every item has the same categories and one shared
        set of step parameters ``τ_k``).
    person_method : ``"wle"`` (Warm 1989; finite for every pattern) or ``"mle"`` for `scores_`.
    max_iter, tol : Newton–Raphson iterations at most; convergence when no parameter moves more
        than ``tol``.
    standard_errors : compute `se_` and `cov_` from the conditional information.

    Attributes (after `fit`)
    ------------------------
    items_ : `irt.Bank`; Rasch items as ``1pl`` with ``a = 1``, PCM/RSM items as ``gpcm`` with
        ``a = 1`` and the centred step thresholds (all steps sum to 0).
    thresholds_ : ``(n_items, m_max)`` centred step difficulties (NaN-padded; Rasch: ``b``).
    locations_ : ``(n_items,)`` item locations, the mean of each item's steps.
    rsm_steps_ : RSM only: the category steps ``τ_k`` centred to sum 0 (``b_ik = β_i + τ_k``).
    se_ : `ItemErrors` (``b`` for Rasch, ``thresholds`` for PCM/RSM); ``cov_`` the covariance of
        the centred thresholds in the order of ``thresholds_`` (row-major, valid entries only).
    loglik_ : the conditional log-likelihood. n_parameters_ : free parameters.
    n_iter_, converged_ : Newton iterations and whether ``tol`` was met.
    n_groups_ : response-pattern groups (sets of answered items). n_persons_used_ : persons with
        a non-extreme score in their group (those carrying information).
    item_ids_, person_ids_ : ids in the order of ``items_`` and ``scores_``.
    scores_ : `irt.AbilityEstimates` (``person_method``) given the items.
    """

    _PARAMS = ("model", "person_method", "max_iter", "tol", "standard_errors")

    def __init__(self, model: str = "pcm", *, person_method: str = "wle",
                 max_iter: int = NEWTON_MAX_ITER, tol: float = NEWTON_TOL,
                 standard_errors: bool = True) -> None:
        self.model = model
        self.person_method = person_method
        self.max_iter = max_iter
        self.tol = tol
        self.standard_errors = standard_errors

    def get_params(self, deep: bool = True) -> dict[str, object]:
        """The constructor settings (scikit-learn estimator protocol)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: object) -> CMLCalibrator:
        """Change constructor settings; unknown names raise `ValueError`."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"unknown setting {name!r}; expected one of {self._PARAMS}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"CMLCalibrator({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ------------------------------------------------------------------ fit
    def fit(self, responses: Responses, item_ids: Sequence[str] | None = None) -> CMLCalibrator:
        """Estimate the item parameters by CML, then the persons given the items; returns self.

        Parameters
        ----------
        responses : an `irt.io.ResponseLog` (ids from the file), `irt.SparseResponses`, or a
            dense persons × items matrix of scored categories 0, 1, … (NaN = missing).
        item_ids : ids of the items for dense/sparse input (default ``i0001``, ``i0002``, …).
        """
        model = self._validated_model()
        data, person_ids, ids = _as_data(responses, item_ids)
        top = _top_categories(data, ids)
        if model == "rasch" and np.any(top > 1):
            i = int(np.flatnonzero(top > 1)[0])
            raise ValueError(f"item {ids[i]!r}: category {int(top[i])} observed; the Rasch model "
                             f"is for 0/1 responses (use model 'pcm' or 'rsm')")
        m = np.full(data.n_items, int(top.max()), dtype=np.int64) if model == "rsm" else top
        groups, informative = _pattern_groups(data, m)
        counts = _category_counts(data, m, informative)
        _check_identified(counts, m, ids, model)
        design = _design(model, m)
        psi, n_iter, converged, deriv = self._newton(groups, m, counts, design)
        delta = design @ psi
        steps = _steps(delta, m)  # (n_delta,) raw steps b_ik in the δ order
        centre = steps.mean()
        steps_c = steps - centre
        self.item_ids_ = tuple(ids)
        self.person_ids_ = person_ids
        self.loglik_ = deriv.loglik
        self.n_parameters_ = int(design.shape[1])
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.n_groups_ = len(groups)
        self.n_persons_used_ = int(informative.sum())
        offsets = np.concatenate([[0], np.cumsum(m)])
        mmax = int(m.max())
        th = np.full((data.n_items, mmax), np.nan)
        for i in range(data.n_items):
            th[i, : m[i]] = steps_c[offsets[i]:offsets[i + 1]]
        self.thresholds_ = th
        self.locations_ = np.nanmean(th, axis=1)
        if model == "rsm":
            tau = np.diff(np.concatenate([[0.0], delta[:mmax]]))  # item 0: β = 0, so κ_k
            self.rsm_steps_ = tau - tau.mean()
        se_th = np.full_like(th, np.nan)
        self.cov_ = None
        if self.standard_errors:
            # _newton evaluates with hessian=True, so the information matrix is always present
            assert deriv.info is not None
            self.cov_ = _threshold_covariance(deriv.info, design, m)
            se = np.sqrt(np.maximum(np.diag(self.cov_), 0.0))
            for i in range(data.n_items):
                se_th[i, : m[i]] = se[offsets[i]:offsets[i + 1]]
        self.items_ = _bank(model, ids, th)
        nan = np.full(data.n_items, np.nan)
        how = _SE_METHOD if self.standard_errors else "none"
        if model == "rasch":
            self.se_ = ItemErrors(nan, se_th[:, 0].copy(), nan, nan,
                                  np.full((data.n_items, 1), np.nan), how)
        else:
            self.se_ = ItemErrors(nan, nan.copy(), nan.copy(), nan.copy(), se_th, how)
        if not converged:
            logger.warning("CML (%s) did not converge in %d Newton iterations", model, n_iter)
        self.scores_ = self.person_estimates(data)
        return self

    def person_estimates(self, responses: SparseResponses | ArrayLike,
                         method: str | None = None) -> AbilityEstimates:
        """ML or WLE abilities given the fitted items (``method`` defaults to ``person_method``).

        ``responses`` index the items in the order of ``items_``.
        """
        method = self.person_method if method is None else method
        if method not in PERSON_METHODS:
            raise ValueError(f"person_method must be one of {PERSON_METHODS}, got {method!r}")
        estimator = wle if method == "wle" else mle
        return estimator(responses, self.items_)

    # ------------------------------------------------------------------ internals
    def _validated_model(self) -> str:
        model = str(self.model).lower()
        if model not in CML_MODELS:
            raise ValueError(f"CML model must be one of {CML_MODELS}, got {self.model!r}")
        if self.person_method not in PERSON_METHODS:
            raise ValueError(f"person_method must be one of {PERSON_METHODS}, "
                             f"got {self.person_method!r}")
        if int(self.max_iter) < 1 or not self.tol > 0:
            raise ValueError("max_iter must be >= 1 and tol > 0")
        return model

    def _newton(self, groups: list[_PatternGroup], m: NDArray[np.int64], counts: NDArray,
                design: NDArray) -> tuple[NDArray, int, bool, _Derivatives]:
        psi = _start(counts, m, design)
        deriv = _derivatives(groups, m, counts, design @ psi, hessian=True)
        converged = False
        n_iter = 0
        for n_iter in range(1, int(self.max_iter) + 1):  # noqa: B007 (reported after the loop)
            g = design.T @ deriv.grad
            h = design.T @ deriv.info @ design
            step = np.linalg.solve(h + 1e-12 * np.eye(h.shape[0]), g)
            size = float(np.max(np.abs(step))) if step.size else 0.0
            if size > MAX_STEP:
                step *= MAX_STEP / size
            scale = 1.0
            for _ in range(MAX_HALVINGS):
                trial = psi + scale * step
                new = _derivatives(groups, m, counts, design @ trial, hessian=True)
                if np.isfinite(new.loglik) and new.loglik >= deriv.loglik - 1e-12 * abs(
                        deriv.loglik):
                    break
                scale *= 0.5
            else:
                break  # no ascent along the Newton direction: at the maximum numerically
            psi, deriv = trial, new
            if scale * size < float(self.tol):
                converged = True
                break
        return psi, n_iter, converged, deriv


_SE_METHOD = "conditional information (CML, observed = expected)"


# ---------------------------------------------------------------------- data handling
def _as_data(responses: Responses, item_ids: Sequence[str] | None
             ) -> tuple[SparseResponses, tuple[str, ...], tuple[str, ...]]:
    if isinstance(responses, ResponseLog):
        if item_ids is not None:
            raise ValueError("item_ids are taken from the response log; do not pass them")
        return responses.data, responses.person_ids, responses.item_ids
    data = responses if isinstance(responses, SparseResponses) \
        else SparseResponses.from_dense(responses)
    if item_ids is None:
        ids = tuple(f"i{k + 1:04d}" for k in range(data.n_items))
    else:
        ids = tuple(str(v) for v in item_ids)
        if len(ids) != data.n_items:
            raise ValueError(f"{len(ids)} item ids for {data.n_items} items")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate item id")
    if np.any(data.response < 0):
        j = int(np.flatnonzero(data.response < 0)[0])
        raise ValueError(f"row {j}: response {data.response[j]} is negative; categories are "
                         f"scored 0, 1, …")
    return data, tuple(f"p{k + 1:06d}" for k in range(data.n_persons)), ids


def _top_categories(data: SparseResponses, ids: Sequence[str]) -> NDArray[np.int64]:
    top = np.full(data.n_items, -1, dtype=np.int64)
    np.maximum.at(top, data.item, data.response)
    if np.any(top < 0):
        raise ValueError(f"item {ids[int(np.flatnonzero(top < 0)[0])]!r} has no responses")
    if np.any(top == 0):
        raise ValueError(f"item {ids[int(np.flatnonzero(top == 0)[0])]!r}: every response is in "
                         f"category 0, so the item cannot be calibrated; leave it out")
    return top


def _pattern_groups(data: SparseResponses, m: NDArray[np.int64]
                    ) -> tuple[list[_PatternGroup], NDArray[np.bool_]]:
    """Group persons by the set of items they answered; flag persons with a non-extreme score."""
    answered = np.zeros((data.n_persons, data.n_items), dtype=bool)
    answered[data.person, data.item] = True
    score = np.bincount(data.person, weights=data.response, minlength=data.n_persons)
    score = score.astype(np.int64)
    max_score = answered.astype(np.int64) @ m
    has = answered.any(axis=1)
    informative = has & (score > 0) & (score < max_score)
    patterns, which = np.unique(answered[has], axis=0, return_inverse=True)
    which = which.ravel()
    persons = np.flatnonzero(has)
    groups = []
    for gi, pattern in enumerate(patterns):
        members = persons[which == gi]
        items = np.flatnonzero(pattern)
        r_max = int(m[items].sum())
        counts = np.bincount(score[members], minlength=r_max + 1).astype(float)
        counts[[0, r_max]] = 0.0  # extreme scores carry no information (P(x | r) = 1)
        groups.append(_PatternGroup(items, counts))
    return groups, informative


def _category_counts(data: SparseResponses, m: NDArray[np.int64], informative: NDArray
                     ) -> NDArray[np.float64]:
    """``n_ik`` for k = 1..m_i in the δ order, from persons with a non-extreme score."""
    offsets = np.concatenate([[0], np.cumsum(m)])
    keep = informative[data.person] & (data.response > 0)
    pos = offsets[data.item[keep]] + data.response[keep] - 1
    return np.bincount(pos, minlength=int(offsets[-1])).astype(float)


def _check_identified(counts: NDArray, m: NDArray[np.int64], ids: Sequence[str],
                      model: str) -> None:
    """Refuse data whose CML estimates are infinite, naming the item and category."""
    offsets = np.concatenate([[0], np.cumsum(m)])
    if counts.sum() == 0:
        raise ValueError("no person has a score between the lowest and highest possible one: "
                         "the conditional likelihood carries no information")
    for i, iid in enumerate(ids):
        c = counts[offsets[i]:offsets[i + 1]]
        if model == "rsm":
            continue
        if np.any(c == 0):
            k = int(np.flatnonzero(c == 0)[0]) + 1
            raise ValueError(f"item {iid!r}: category {k} is never observed among persons with "
                             f"a non-extreme score, so its step parameter is not identified by "
                             f"CML; collapse it with a neighbouring category")
    if model == "rsm":
        per_cat = counts.reshape(len(ids), -1)
        if np.any(per_cat.sum(axis=0) == 0):
            k = int(np.flatnonzero(per_cat.sum(axis=0) == 0)[0]) + 1
            raise ValueError(f"category {k} is never observed among persons with a non-extreme "
                             f"score: the rating scale step τ_{k} is not identified")
        for i, iid in enumerate(ids):
            if per_cat[i].sum() == 0:
                raise ValueError(f"item {iid!r}: every informative person answered 0; its "
                                 f"location is not identified by CML")


# ---------------------------------------------------------------------- the model
def _design(model: str, m: NDArray[np.int64]) -> NDArray[np.float64]:
    """``δ = D ψ``: the cumulative parameters as a linear map of the free parameters."""
    n_delta = int(m.sum())
    if model != "rsm":
        return np.eye(n_delta)[:, 1:]  # δ_11 = 0
    n_items, mm = m.size, int(m[0])
    d = np.zeros((n_delta, n_items - 1 + mm - 1))
    for i in range(n_items):
        for k in range(1, mm + 1):
            row = i * mm + k - 1
            if i > 0:
                d[row, i - 1] = k  # k β_i, β_1 = 0
            if k > 1:
                d[row, n_items - 1 + k - 2] = 1.0  # κ_k, κ_1 = 0
    return d


def _start(counts: NDArray, m: NDArray[np.int64], design: NDArray) -> NDArray:
    """Start values: adjacent-category log-odds of the marginal counts, projected onto ψ."""
    offsets = np.concatenate([[0], np.cumsum(m)])
    delta = np.zeros(int(m.sum()))
    # n_i0 is unknown here (only k >= 1 counted); use the mean count as its stand-in
    for i in range(m.size):
        c = counts[offsets[i]:offsets[i + 1]] + 0.5
        prev = np.concatenate([[c.mean()], c[:-1]])
        delta[offsets[i]:offsets[i + 1]] = np.cumsum(np.log(prev / c))
    psi, *_ = np.linalg.lstsq(design, delta - delta[0], rcond=None)
    return psi


def _steps(delta: NDArray, m: NDArray[np.int64]) -> NDArray:
    """Step difficulties ``b_ik = δ_ik − δ_i,k−1`` in the δ order."""
    return _step_map(m) @ delta


def _step_map(m: NDArray[np.int64]) -> NDArray:
    n = int(m.sum())
    t = np.eye(n)
    offsets = np.concatenate([[0], np.cumsum(m)])
    for i in range(m.size):
        for k in range(offsets[i] + 1, offsets[i + 1]):
            t[k, k - 1] = -1.0
    return t


def _threshold_covariance(info: NDArray, design: NDArray, m: NDArray[np.int64]) -> NDArray:
    """Covariance of the centred steps: ``C T D (Dᵀ H D)⁻¹ Dᵀ Tᵀ Cᵀ``."""
    h = design.T @ info @ design
    v = np.linalg.inv(h)
    n = int(m.sum())
    lin = (np.eye(n) - 1.0 / n) @ _step_map(m) @ design
    return lin @ v @ lin.T


def _bank(model: str, ids: Sequence[str], th: NDArray) -> Bank:
    items = []
    for i, iid in enumerate(ids):
        if model == "rasch":
            items.append(ItemParams(iid, "1pl", 1.0, float(th[i, 0])))
        else:
            row = th[i][~np.isnan(th[i])]
            items.append(ItemParams(iid, "gpcm", 1.0, thresholds=tuple(float(v) for v in row)))
    return Bank.from_params(items)


# ---------------------------------------------------------------------- ESFs and derivatives
def _convolve(a: NDArray, b: NDArray, length: int) -> NDArray:
    """Row-wise ``(a ∗ b)_r = Σ_s a_s b_{r−s}`` for ``r < length``; ``a, b`` are ``(n, ·)``.

    The loop runs over the columns of the narrower operand (an item vector has ``m_i + 1``).
    """
    if a.shape[1] > b.shape[1]:
        a, b = b, a
    out = np.zeros((max(a.shape[0], b.shape[0]), length))
    for s in range(min(a.shape[1], length)):
        col = a[:, s:s + 1]
        w = min(b.shape[1], length - s)
        out[:, s:s + w] += col * b[:, :w]
    return out


@dataclass(frozen=True, eq=False)
class _Tables:
    prefix: NDArray  # (n + 1, R + 1): F_i, the ESFs of items 0 … i − 1
    suffix: NDArray  # (n + 1, R + 1): B_i, the ESFs of items i … n − 1
    gamma: NDArray  # (R + 1,)
    without: NDArray  # (n, R + 1): γ^(−i)


def _tables(eps: NDArray) -> _Tables:
    n, width = eps.shape
    big_r = int(np.sum(np.max(np.where(eps > 0, np.arange(width), 0), axis=1)))
    length = big_r + 1
    prefix = np.zeros((n + 1, length))
    suffix = np.zeros((n + 1, length))
    prefix[0, 0] = suffix[n, 0] = 1.0
    for i in range(n):
        prefix[i + 1] = np.convolve(prefix[i], eps[i])[:length]
        suffix[n - 1 - i] = np.convolve(suffix[n - i], eps[n - 1 - i])[:length]
    without = _convolve(prefix[:n], suffix[1:], length)
    return _Tables(prefix, suffix, prefix[n], without)


def elementary_symmetric_functions(eps: ArrayLike) -> tuple[NDArray, NDArray]:
    """ESFs ``γ_r`` and the leave-one-out ESFs ``γ^(−i)_r`` by the summation algorithm.

    Parameters
    ----------
    eps : ``(n_items, M + 1)``; row i is ``(1, ε_i1, …, ε_im_i, 0, …)`` with ``ε_ik = e^{−δ_ik}``.

    Returns
    -------
    ``γ`` of shape ``(R + 1,)`` with ``R = Σ m_i``, and ``γ^(−i)`` of shape ``(n_items, R + 1)``.

    ``γ`` is the polynomial product (convolution) of the item vectors, ``γ_r`` the coefficient
    of ``t^r`` in ``Π_i Σ_k ε_ik t^k`` (Fischer 1974; Verhelst, Glas & van der Sluis 1984).
    Prefix products ``F_i`` (items before i) and suffix products ``B_i`` give
    ``γ^(−i) = F_i ∗ B_{i+1}`` without any division (which would lose precision).
    """
    t = _tables(np.asarray(eps, dtype=float))
    return t.gamma, t.without


def _pair_sums(t: _Tables, eps: NDArray, w: NDArray, max_shift: int) -> NDArray:
    """``S[i, j, s] = Σ_r w_r γ^(−i,−j)_{r−s}`` for ``i ≠ j`` and ``s ≤ max_shift``.

    ``γ^(−i,−j) = F_i ∗ (items i+1 … j−1) ∗ B_{j+1}``, and ``Σ_r w_r (X ∗ B)_{r−s} =
    Σ_t X_t V_{t+s}`` with ``V_t = Σ_u w_{t+u} B_u`` (a Hankel product computed once per
    suffix), so each pair costs ``O(R)``. Pairs at the same distance ``d = j − i`` are done
    together, carrying ``F_i ∗ (items i+1 … j−1)`` from one ``d`` to the next.
    """
    n = eps.shape[0]
    length = t.gamma.size
    wpad = np.concatenate([w, np.zeros(length)])
    hankel = wpad[np.add.outer(np.arange(length), np.arange(length))]
    v = t.suffix @ hankel  # v[j, t] = Σ_u w_{t+u} B_j[u]
    out = np.zeros((n, n, max_shift + 1))
    carry = t.prefix[: n - 1].copy()
    for d in range(1, n):
        i = np.arange(n - d)
        vj = v[i + d + 1]
        for s in range(min(max_shift, length - 1) + 1):
            out[i, i + d, s] = np.einsum("pt,pt->p", carry[:, : length - s], vj[:, s:])
        out[i + d, i, :] = out[i, i + d, :]
        if d < n - 1:
            carry = _convolve(carry[: n - d - 1], eps[i[: n - d - 1] + d], length)
    return out


def _derivatives(groups: list[_PatternGroup], m: NDArray[np.int64], counts: NDArray,
                 delta: NDArray, hessian: bool) -> _Derivatives:
    """Conditional log-likelihood, its gradient and information with respect to δ."""
    offsets = np.concatenate([[0], np.cumsum(m)])
    n_delta = int(offsets[-1])
    loglik = -float(counts @ delta)
    grad = -counts.copy()
    info = np.zeros((n_delta, n_delta)) if hessian else None
    mmax = int(m.max())
    for g in groups:
        items = g.items
        mi = m[items]
        k_of = np.concatenate([np.arange(1, k + 1) for k in mi])
        row_of = np.repeat(np.arange(items.size), mi)
        flat = offsets[items][row_of] + k_of - 1  # positions in δ
        eps = np.zeros((items.size, mmax + 1))
        eps[:, 0] = 1.0
        eps[row_of, k_of] = np.exp(-delta[flat])
        t = _tables(eps)
        gamma = t.gamma
        if not np.all(np.isfinite(gamma)) or np.any(gamma <= 0):
            return _Derivatives(-np.inf, grad, info)
        nr = g.score_counts
        used = nr > 0
        loglik -= float(nr[used] @ np.log(gamma[used]))
        length = gamma.size
        e_val = eps[row_of, k_of]
        r = np.arange(length)
        src = r[None, :] - k_of[:, None]
        shifted = np.where(src >= 0, t.without[row_of[:, None], np.maximum(src, 0)], 0.0)
        pi = e_val[:, None] * shifted / gamma[None, :]  # π_ik|r, (n_par_g, R + 1)
        expected = pi @ nr
        grad[flat] += expected
        if not hessian:
            continue
        assert info is not None  # hessian is True here, so info was allocated above
        block = -(pi * nr[None, :]) @ pi.T
        block[np.arange(flat.size), np.arange(flat.size)] += expected
        if items.size > 1:
            w = np.where(used, nr / gamma, 0.0)
            sums = _pair_sums(t, eps, w, 2 * mmax)
            kk = k_of[:, None] + k_of[None, :]
            cross = e_val[:, None] * e_val[None, :] * sums[row_of[:, None], row_of[None, :], kk]
            block += np.where(row_of[:, None] == row_of[None, :], 0.0, cross)
        info[np.ix_(flat, flat)] += block
    return _Derivatives(loglik, grad, info)
