"""Likelihood of response patterns and ability (θ) estimation, vectorized over persons.

Every estimator takes dense ``(n_persons, n_items)`` responses (NaN or ``mask`` for missing) or
`SparseResponses`, and returns `AbilityEstimates` with one θ and standard error per person.

* EAP (Bock & Mislevy 1982): ``θ̂ = Σ_q θ_q L(θ_q) w_q / Σ_q L(θ_q) w_q`` with the posterior SD
  as standard error. Defined for every pattern, including all-correct and all-wrong ones.
* MAP: the posterior mode under a N(μ, σ²) prior by Fisher scoring,
  ``θ ← θ + (S(θ) − (θ − μ)/σ²) / (I(θ) + 1/σ²)``; SE ``= (I(θ̂) + 1/σ²)^{−1/2}``.
* MLE: Fisher scoring on ``S(θ) = Σ_i P′_{ix}/P_{ix}`` within ``bounds``; all-correct and all-wrong
  patterns (no finite maximum) get the bound, with SE ``= I(bound)^{−1/2}``.
* WLE (Warm 1989): the root of the weighted score ``S_w(θ) = S(θ) + J(θ)/(2 I(θ))`` with
  ``J = Σ_i Σ_k P′_{ik} P″_{ik}/P_{ik}``, finite for extreme patterns of the logistic models.
  For the Rasch, 2PL, PCM and GPCM ``J = I′``, so ``S_w`` is the derivative of the weighted
  log-likelihood ``log L(θ) + ½ log I(θ)``. The SE is that function's own curvature at the root,
  ``SE = (−S_w′(θ̂))^{−1/2}`` with ``S_w′ = ∂²log L/∂θ² + ∂/∂θ [J/(2I)]``
  (Warm 1989, eq. 18 ff.; the asymptotic value is ``I^{−1/2}``, which ignores the weight's
  curvature and overstates the precision of short tests). The bounds only bind where no
  interior estimate exists: extreme patterns (all lowest / all highest categories) whose WLE
  lies outside them, and patterns whose weighted score has no root (3PL/4PL guessing patterns).

Persons with no responses get the prior (mean and SD; for MLE/WLE the N(0, 1) defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from irt.models import PROB_FLOOR, as_theta, category_derivatives, paired_category_derivatives
from irt.params import Bank
from irt.quadrature import DEFAULT_NODES, DEFAULT_RANGE, Quadrature, normal_grid
from irt.responses import SparseResponses, as_sparse, check_dense, dense_with_mask

#: Default interval for MLE (every person) and for WLE (extreme patterns only).
THETA_BOUNDS = (-4.0, 4.0)
#: WLE of non-extreme patterns is searched on ± this (logits); reaching it means no root.
WLE_SEARCH_LIMIT = 30.0
#: Step for the central difference of the WLE correction ``J/(2I)`` (its error is O(h²)).
WLE_CURVATURE_STEP = 1e-4
#: Fisher-scoring tolerance on |Δθ| and iteration cap.
NEWTON_TOL = 1e-8
NEWTON_MAX_ITER = 100
#: Largest Fisher-scoring step, for stability far from the mode.
MAX_STEP = 1.0

Responses = ArrayLike | SparseResponses


@dataclass(frozen=True, eq=False)
class AbilityEstimates:
    """Per-person ability estimates: ``theta``, ``se`` and ``n_responses`` of shape (n_persons,)."""

    theta: NDArray[np.float64]
    se: NDArray[np.float64]
    n_responses: NDArray[np.int64]
    method: str

    def __len__(self) -> int:
        return int(self.theta.shape[0])


def _prepare(responses: Responses, bank: Bank, mask: ArrayLike | None) -> SparseResponses:
    return as_sparse(responses, bank, mask)


def log_likelihood_grid(nodes: ArrayLike, bank: Bank, responses: Responses,
                        mask: ArrayLike | None = None) -> NDArray[np.float64]:
    """``log L_p(θ_q) = Σ_{i observed} log P_i(x_pi | θ_q)``: shape ``(n_persons, n_nodes)``.

    Dense input is multiplied as one indicator block per category (BLAS); sparse input through a
    CSR indicator matrix, so the cost is ``n_responses × n_nodes``.
    """
    return _grid_loglik(as_theta(nodes), bank, _Observed.of(responses, bank, mask))


@dataclass(frozen=True, eq=False)
class _Observed:
    """Validated responses, kept dense when they came dense (for the BLAS path)."""

    sparse: SparseResponses | None
    x: NDArray[np.int64] | None = None
    observed: NDArray[np.bool_] | None = None

    @classmethod
    def of(cls, responses: Responses, bank: Bank, mask: ArrayLike | None) -> _Observed:
        if isinstance(responses, SparseResponses):
            return cls(as_sparse(responses, bank, mask))
        x, observed = dense_with_mask(responses, mask)
        check_dense(x, observed, bank)
        return cls(None, x, observed)

    @property
    def n_persons(self) -> int:
        if self.sparse is not None:
            return self.sparse.n_persons
        assert self.x is not None  # dense when not sparse (`of`)
        return self.x.shape[0]

    def counts(self) -> NDArray[np.int64]:
        if self.sparse is not None:
            return self.sparse.counts_per_person()
        assert self.observed is not None
        return self.observed.sum(axis=1).astype(np.int64)


def _grid_loglik(nodes: NDArray, bank: Bank, data: _Observed) -> NDArray[np.float64]:
    logp = np.log(np.clip(category_derivatives(nodes, bank, order=0)[0], PROB_FLOOR, 1.0))
    kmax = logp.shape[-1]
    if data.sparse is not None:
        flat = logp.reshape(nodes.shape[0], len(bank) * kmax)
        return np.asarray(data.sparse.onehot(kmax) @ flat.T)
    x, observed = data.x, data.observed
    assert x is not None and observed is not None  # dense when not sparse
    if kmax == 2:
        # log L = Σ_i [x log P + (1 − x) log Q] = x·(log P − log Q) + observed·log Q
        obs = observed.astype(float)
        return (obs * x) @ (logp[:, :, 1] - logp[:, :, 0]).T + obs @ logp[:, :, 0].T
    out = np.zeros((x.shape[0], nodes.shape[0]))
    for k in range(kmax):
        out += (observed & (x == k)).astype(float) @ logp[:, :, k].T
    return out


def _paired_terms(theta: NDArray, bank: Bank, data: SparseResponses, order: int):
    """Per-response derivatives of log P(x | θ_person) and Fisher information terms."""
    rows = bank.rows(data.item)
    parts = paired_category_derivatives(theta[data.person], rows, order=order)
    p = np.clip(parts[0], PROB_FLOOR, None)
    j = np.arange(data.n_responses)
    px = p[j, data.response]
    out = {"logp": np.log(px)}
    if order >= 1:
        p1 = parts[1]
        out["d1"] = p1[j, data.response] / px
        out["info"] = np.sum(np.where(parts[0] > PROB_FLOOR, p1 * p1 / p, 0.0), axis=-1)
        if order >= 2:
            p2 = parts[2]
            out["d2"] = p2[j, data.response] / px - out["d1"] ** 2
            out["J"] = np.sum(np.where(parts[0] > PROB_FLOOR, p1 * p2 / p, 0.0), axis=-1)
    return out


def _per_person(values: NDArray, data: SparseResponses) -> NDArray:
    return np.bincount(data.person, weights=values, minlength=data.n_persons)


def log_likelihood(theta: ArrayLike, bank: Bank, responses: Responses,
                   mask: ArrayLike | None = None) -> NDArray[np.float64]:
    """``log L_p(θ_p)`` for each person at their own θ: shape ``(n_persons,)``."""
    data = _prepare(responses, bank, mask)
    t = _person_theta(theta, data)
    return _per_person(_paired_terms(t, bank, data, 0)["logp"], data)


def log_likelihood_derivatives(theta: ArrayLike, bank: Bank, responses: Responses,
                               mask: ArrayLike | None = None
                               ) -> tuple[NDArray, NDArray, NDArray]:
    """``(log L, d log L/dθ, d² log L/dθ²)`` per person at their own θ, each ``(n_persons,)``."""
    data = _prepare(responses, bank, mask)
    t = _person_theta(theta, data)
    terms = _paired_terms(t, bank, data, 2)
    return (_per_person(terms["logp"], data), _per_person(terms["d1"], data),
            _per_person(terms["d2"], data))


def _person_theta(theta: ArrayLike, data: SparseResponses) -> NDArray:
    t = as_theta(theta)
    if t.shape[0] == 1 and data.n_persons != 1:
        t = np.full(data.n_persons, t[0])
    if t.shape[0] != data.n_persons:
        raise ValueError(f"theta has {t.shape[0]} values for {data.n_persons} persons")
    return t


def _broadcast_prior(value: ArrayLike, n: int, name: str) -> NDArray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one value per person ({n}), "
                         f"got shape {arr.shape}")
    return arr


def eap(responses: Responses, bank: Bank, *, mask: ArrayLike | None = None,
        quadrature: Quadrature | None = None, prior_mean: ArrayLike = 0.0,
        prior_sd: ArrayLike = 1.0, n_nodes: int = DEFAULT_NODES) -> AbilityEstimates:
    """Expected a posteriori θ and posterior SD for every person.

    With ``quadrature`` given, its weights are the prior (any shape, e.g. an empirical
    histogram). Otherwise the prior is N(prior_mean, prior_sd²), per person if arrays are given,
    integrated on ``n_nodes`` equally spaced nodes over ± 6 prior SDs.
    """
    data = _Observed.of(responses, bank, mask)
    n = data.n_persons
    if quadrature is None:
        mu = _broadcast_prior(prior_mean, n, "prior_mean")
        sd = _broadcast_prior(prior_sd, n, "prior_sd")
        if np.any(~np.isfinite(mu)) or np.any(~(sd > 0)):
            raise ValueError("prior_mean must be finite and prior_sd > 0")
        if n == 0 or (np.ptp(mu) == 0 and np.ptp(sd) == 0):
            quadrature = normal_grid(n_nodes, float(mu[0]) if n else 0.0,
                                     float(sd[0]) if n else 1.0)
    if quadrature is not None:
        nodes, log_prior = quadrature.nodes, quadrature.log_weights
    else:
        lo = float(np.min(mu - DEFAULT_RANGE * sd))
        hi = float(np.max(mu + DEFAULT_RANGE * sd))
        nodes = np.linspace(lo, hi, max(n_nodes, int(np.ceil((hi - lo) / 0.1)) + 1))
        log_prior = -0.5 * ((nodes - mu[:, None]) / sd[:, None]) ** 2
    log_post = _grid_loglik(nodes, bank, data) + log_prior
    return _posterior_moments(log_post, nodes, data.counts())


def _posterior_moments(log_post: NDArray, nodes: NDArray, counts: NDArray[np.int64]
                       ) -> AbilityEstimates:
    """Posterior mean and SD from an unnormalized log posterior ``(n_persons, n_nodes)``."""
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    total = post.sum(axis=1)
    mean = post @ nodes / total
    centred = nodes - nodes.mean()  # centring keeps E[θ²] − E[θ]² accurate
    var = post @ (centred * centred) / total - (mean - nodes.mean()) ** 2
    return AbilityEstimates(mean, np.sqrt(np.maximum(var, 0.0)), counts, "eap")


def _fisher_scoring(data: SparseResponses, bank: Bank, start: NDArray, step_fn, bounds):
    theta = start.copy()
    active = np.ones(data.n_persons, dtype=bool)
    for _ in range(NEWTON_MAX_ITER):
        terms = _paired_terms(theta, bank, data, 2)
        step = step_fn(theta, terms)
        step = np.clip(step, -MAX_STEP, MAX_STEP)
        step[~active] = 0.0
        new = np.clip(theta + step, *bounds)
        active &= np.abs(new - theta) > NEWTON_TOL
        theta = new
        if not active.any():
            break
    return theta


def _extreme_patterns(data: SparseResponses, bank: Bank) -> tuple[NDArray, NDArray]:
    """Persons whose every response is in the lowest / highest category."""
    top = bank.n_categories[data.item] - 1
    n_resp = data.counts_per_person()
    at_low = np.bincount(data.person, weights=(data.response == 0), minlength=data.n_persons)
    at_top = np.bincount(data.person, weights=(data.response == top), minlength=data.n_persons)
    has = n_resp > 0
    return has & (at_low == n_resp), has & (at_top == n_resp)


def map_estimate(responses: Responses, bank: Bank, *, mask: ArrayLike | None = None,
                 prior_mean: ArrayLike = 0.0, prior_sd: ArrayLike = 1.0) -> AbilityEstimates:
    """Maximum a posteriori θ under a N(prior_mean, prior_sd²) prior (Fisher scoring)."""
    data = _prepare(responses, bank, mask)
    mu = _broadcast_prior(prior_mean, data.n_persons, "prior_mean")
    sd = _broadcast_prior(prior_sd, data.n_persons, "prior_sd")
    if np.any(~np.isfinite(mu)) or np.any(~(sd > 0)):
        raise ValueError("prior_mean must be finite and prior_sd > 0")
    prec = 1.0 / sd**2

    def step(theta, terms):
        s = _per_person(terms["d1"], data) - (theta - mu) * prec
        return s / (_per_person(terms["info"], data) + prec)

    theta = _fisher_scoring(data, bank, mu.copy(), step, (-np.inf, np.inf))
    info = _per_person(_paired_terms(theta, bank, data, 1)["info"], data)
    return AbilityEstimates(theta, 1.0 / np.sqrt(info + prec), data.counts_per_person(), "map")


def mle(responses: Responses, bank: Bank, *, mask: ArrayLike | None = None,
        bounds: tuple[float, float] = THETA_BOUNDS) -> AbilityEstimates:
    """Maximum likelihood θ within ``bounds`` (all-correct → upper, all-wrong → lower bound)."""
    data = _prepare(responses, bank, mask)

    def step(theta, terms):
        info = _per_person(terms["info"], data)
        return _per_person(terms["d1"], data) / np.maximum(info, 1e-10)

    return _bounded_estimate(data, bank, step, bounds, "mle")


def wle(responses: Responses, bank: Bank, *, mask: ArrayLike | None = None,
        bounds: tuple[float, float] = THETA_BOUNDS) -> AbilityEstimates:
    """Warm's weighted likelihood θ: the root of ``S + J/(2I)``, SE from its curvature.

    ``bounds`` clip only the estimates that have no interior value: extreme patterns whose WLE
    falls outside them and patterns without a root (see the module docstring); every other
    person gets the root wherever it lies.
    """
    data = _prepare(responses, bank, mask)
    lo, hi = bounds
    if not lo < hi:
        raise ValueError(f"bounds must be increasing, got {bounds}")

    def step(theta, terms):
        info = np.maximum(_per_person(terms["info"], data), 1e-10)
        score = _per_person(terms["d1"], data) + _per_person(terms["J"], data) / (2.0 * info)
        return score / info

    limit = (-WLE_SEARCH_LIMIT, WLE_SEARCH_LIMIT)
    theta = _fisher_scoring(data, bank, np.zeros(data.n_persons), step, limit)
    low, top = _extreme_patterns(data, bank)
    extreme = low | top
    no_root = np.abs(theta) >= WLE_SEARCH_LIMIT - 1e-9
    clip = extreme | no_root
    theta[clip] = np.clip(theta[clip], lo, hi)
    n_resp = data.counts_per_person()
    none = n_resp == 0
    theta[none] = 0.0
    curvature = wle_curvature(theta, bank, data)
    info = _per_person(_paired_terms(theta, bank, data, 1)["info"], data)
    # at a clipped value the weighted likelihood has no maximum: report I^{-1/2} there
    usable = (curvature > 0) & ~(clip & ((theta == lo) | (theta == hi)))
    se = np.where(usable, 1.0 / np.sqrt(np.where(usable, curvature, 1.0)),
                  1.0 / np.sqrt(np.maximum(info, 1e-300)))
    se = np.where(none, 1.0, se)
    return AbilityEstimates(theta, se, n_resp, "wle")


def wle_curvature(theta: ArrayLike, bank: Bank, responses: Responses,
                  mask: ArrayLike | None = None) -> NDArray[np.float64]:
    """``−S_w′(θ)``: minus the derivative of Warm's weighted score at each person's θ.

    ``S_w = S + J/(2I)``, so ``−S_w′ = −∂²log L/∂θ² − ∂/∂θ [J/(2I)]``. The first term is
    analytic; the second is a central difference of the analytic ``J/(2I)`` with step
    `WLE_CURVATURE_STEP` (truncation error ``O(h²)``, about 1e-9 relative). For the Rasch model
    this is ``I − ½ (I″/I − (I′/I)²)`` with ``I = Σ P Q``, ``I′ = Σ P Q (1 − 2P)``,
    ``I″ = Σ P Q (1 − 6 P Q)`` (Warm 1989). Shape ``(n_persons,)``.
    """
    data = _prepare(responses, bank, mask)
    t = _person_theta(theta, data)
    d2 = _per_person(_paired_terms(t, bank, data, 2)["d2"], data)
    h = WLE_CURVATURE_STEP

    def correction(x: NDArray) -> NDArray:
        terms = _paired_terms(x, bank, data, 2)
        info = np.maximum(_per_person(terms["info"], data), 1e-300)
        return _per_person(terms["J"], data) / (2.0 * info)

    slope = (correction(t + h) - correction(t - h)) / (2.0 * h)
    return -d2 - slope


def _bounded_estimate(data: SparseResponses, bank: Bank, step_fn, bounds, method: str
                      ) -> AbilityEstimates:
    lo, hi = bounds
    if not lo < hi:
        raise ValueError(f"bounds must be increasing, got {bounds}")
    low, top = _extreme_patterns(data, bank)
    start = np.zeros(data.n_persons)
    theta = _fisher_scoring(data, bank, start, step_fn, bounds)
    if method == "mle":
        theta[low] = lo
        theta[top] = hi
    info = _per_person(_paired_terms(theta, bank, data, 1)["info"], data)
    n_resp = data.counts_per_person()
    none = n_resp == 0
    theta[none] = 0.0
    se = np.where(none, 1.0, 1.0 / np.sqrt(np.maximum(info, 1e-300)))
    return AbilityEstimates(theta, se, n_resp, method)
