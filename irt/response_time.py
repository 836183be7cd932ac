"""The lognormal response-time model (van der Linden 2006) on long-format (sparse) data.

For person j with speed τ_j and item i with time intensity β_i and time discrimination α_i, the
log response time is normal:

    ln T_ij = β_i − τ_j + ε_ij / α_i,     ε_ij ~ N(0, 1),

i.e. ``f(t) = α_i / (t √(2π)) · exp(−½ [α_i (ln t − (β_i − τ_j))]²)``. With the population model
τ_j ~ N(0, σ_τ²) (which also fixes the scale's origin) the model is a linear mixed model and its
marginal likelihood is maximised by an EM whose steps are closed form:

* E-step: τ_j | data ~ N(m_j, v_j) with precision ``1/v_j = 1/σ_τ² + Σ_i α_i²`` and mean
  ``m_j = v_j Σ_i α_i² (β_i − ln t_ij)`` (sums over the items j answered);
* M-step: ``β_i = mean_j (ln t_ij + m_j)``, ``1/α_i² = mean_j [(ln t_ij − β_i + m_j)² + v_j]``,
  ``σ_τ² = mean_j (m_j² + v_j)``.

References: W. J. van der Linden (2006), "A lognormal model for response times on test items",
Journal of Educational and Behavioral Statistics 31(2), 181–204; van der Linden & Guo (2008),
"Bayesian procedures for identifying aberrant response-time patterns in adaptive testing",
Psychometrika 73(3), 365–384 (the standardized residuals below, with τ estimated without the
answer being judged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Smallest time discrimination the EM lets an item reach (a guard against items with constant
#: times; α = 20 means a log-time SD of 0.05).
MAX_ALPHA = 20.0
DEFAULT_TOL = 1e-6
DEFAULT_MAX_ITER = 500


@dataclass(frozen=True)
class ResponseTimeFit:
    """Item parameters of the lognormal model, the speed distribution and per-person speeds.

    ``beta`` (time intensity, log seconds), ``alpha`` (time discrimination, 1/SD of log time)
    per item; ``sigma_tau`` the SD of speed in the population; ``tau``/``tau_se`` each person's
    posterior mean and SD; ``n_responses`` per item; ``loglik`` the marginal log-likelihood.
    """

    beta: NDArray[np.float64]
    alpha: NDArray[np.float64]
    sigma_tau: float
    tau: NDArray[np.float64]
    tau_se: NDArray[np.float64]
    n_responses: NDArray[np.int64]
    loglik: float
    n_iter: int
    converged: bool


def _check(person: ArrayLike, item: ArrayLike, seconds: ArrayLike, n_persons: int,
           n_items: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    p = np.asarray(person, dtype=np.int64).reshape(-1)
    i = np.asarray(item, dtype=np.int64).reshape(-1)
    t = np.asarray(seconds, dtype=np.float64).reshape(-1)
    if not (p.shape == i.shape == t.shape):
        raise ValueError("person, item and seconds must have the same length")
    if p.size and (p.min() < 0 or p.max() >= n_persons or i.min() < 0 or i.max() >= n_items):
        raise ValueError("person or item index out of range")
    bad = np.flatnonzero(~(np.isfinite(t) & (t > 0)))
    if bad.size:
        raise ValueError(f"response time at row {int(bad[0])} is {t[bad[0]]!r}; times must be "
                         f"finite and > 0 seconds")
    return p, i, np.log(t)


def speed_posterior(person: ArrayLike, item: ArrayLike, seconds: ArrayLike, beta: ArrayLike,
                    alpha: ArrayLike, sigma_tau: float, n_persons: int
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Posterior mean and SD of each person's speed τ given calibrated items (the E-step)."""
    b, a2 = _usable(beta, alpha)
    p, i, y = _check(person, item, seconds, n_persons, b.size)
    precision = 1.0 / sigma_tau**2 + np.bincount(p, a2[i], n_persons)
    mean = np.bincount(p, a2[i] * (b[i] - y), n_persons) / precision
    return mean, 1.0 / np.sqrt(precision)


def _usable(beta: ArrayLike, alpha: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """β and α² with items without parameters (NaN) given weight 0."""
    b = np.asarray(beta, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    ok = np.isfinite(b) & np.isfinite(a)
    return np.where(ok, b, 0.0), np.where(ok, a, 0.0) ** 2


def fit_lognormal(person: ArrayLike, item: ArrayLike, seconds: ArrayLike, n_persons: int,
                  n_items: int, *, min_responses: int = 2, tol: float = DEFAULT_TOL,
                  max_iter: int = DEFAULT_MAX_ITER) -> ResponseTimeFit:
    """Marginal ML of the lognormal model by EM (closed-form steps, see the module docstring).

    Items with fewer than ``min_responses`` (≥ 2) times are left out and get NaN parameters
    (their times carry no evidence in `loo_time_residuals`); persons without responses get
    the prior.
    """
    if min_responses < 2:
        raise ValueError("min_responses must be >= 2 (an item's time SD needs two times)")
    p, i, y = _check(person, item, seconds, n_persons, n_items)
    counts = np.bincount(i, minlength=n_items)
    keep = counts[i] >= min_responses
    if not keep.any():
        raise ValueError(f"no item has {min_responses} or more response times")
    p, i, y = p[keep], i[keep], y[keep]
    n_i = np.maximum(np.bincount(i, minlength=n_items), 1)
    beta = np.bincount(i, y, n_items) / n_i
    resid = y - beta[i]
    alpha = _alpha_of(np.bincount(i, resid**2, n_items) / n_i)
    sigma2 = max(float(np.var(np.bincount(p, -resid, n_persons)
                              / np.maximum(np.bincount(p, minlength=n_persons), 1))), 1e-4)
    loglik, converged, it = -np.inf, False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        a2 = alpha**2
        precision = 1.0 / sigma2 + np.bincount(p, a2[i], n_persons)
        m = np.bincount(p, a2[i] * (beta[i] - y), n_persons) / precision
        v = 1.0 / precision
        new_ll = _marginal_loglik(p, i, y, beta, alpha, sigma2, n_persons)
        beta = np.bincount(i, y + m[p], n_items) / n_i
        r = y - beta[i] + m[p]
        alpha = _alpha_of(np.bincount(i, r**2 + v[p], n_items) / n_i)
        sigma2 = float(np.mean(m**2 + v))
        if abs(new_ll - loglik) < tol * (1.0 + abs(new_ll)):
            loglik, converged = new_ll, True
            break
        loglik = new_ll
    tau, tau_se = speed_posterior(p, i, np.exp(y), beta, alpha, float(np.sqrt(sigma2)), n_persons)
    unfit = counts < min_responses
    beta[unfit], alpha[unfit] = np.nan, np.nan
    return ResponseTimeFit(beta, alpha, float(np.sqrt(sigma2)), tau, tau_se,
                           counts.astype(np.int64), float(loglik), it, converged)


def _alpha_of(mean_square: NDArray[np.float64]) -> NDArray[np.float64]:
    """α = 1/√(mean square), capped at `MAX_ALPHA` (also for items without times)."""
    floor = 1.0 / MAX_ALPHA**2
    return 1.0 / np.sqrt(np.maximum(mean_square, floor))


def _marginal_loglik(p: NDArray[np.int64], i: NDArray[np.int64], y: NDArray[np.float64],
                     beta: NDArray[np.float64], alpha: NDArray[np.float64], sigma2: float,
                     n_persons: int) -> float:
    """Σ_j ln ∫ Π_i f(y_ij | τ) φ(τ; 0, σ²) dτ in closed form (a Gaussian integral): with
    e_ij = β_i − y_ij, A_j = Σ α_i², B_j = Σ α_i² e_ij, C_j = Σ α_i² e_ij², it is
    Σ ln α_i − n_j/2 ln 2π − ½ ln(1 + σ² A_j) − ½ (C_j − B_j² / (A_j + 1/σ²))."""
    a2 = alpha[i] ** 2
    e = beta[i] - y
    big_a = np.bincount(p, a2, n_persons)
    big_b = np.bincount(p, a2 * e, n_persons)
    big_c = np.bincount(p, a2 * e * e, n_persons)
    per = (-0.5 * np.log1p(sigma2 * big_a)
           - 0.5 * (big_c - big_b**2 / (big_a + 1.0 / sigma2)))
    return float(np.sum(np.log(alpha[i])) - 0.5 * y.size * np.log(2 * np.pi) + per.sum()
                 - np.sum(y))


def loo_time_residuals(person: ArrayLike, item: ArrayLike, seconds: ArrayLike, beta: ArrayLike,
                       alpha: ArrayLike, sigma_tau: float, n_persons: int) -> NDArray[np.float64]:
    """Standardized log-time residual of every answer with the person's speed estimated from
    their *other* answers (van der Linden & Guo 2008):

        z_ij = (ln t_ij − (β_i − m_j^{(−i)})) / √(1/α_i² + v_j^{(−i)}),

    N(0, 1) under the model. Large negative values are answers much faster than this person's
    usual pace on this item's usual time. Items without parameters give NaN."""
    b, a2 = _usable(beta, alpha)
    p, i, y = _check(person, item, seconds, n_persons, b.size)
    precision = 1.0 / sigma_tau**2 + np.bincount(p, a2[i], n_persons)
    numerator = np.bincount(p, a2[i] * (b[i] - y), n_persons)
    prec_loo = precision[p] - a2[i]
    m_loo = (numerator[p] - a2[i] * (b[i] - y)) / prec_loo
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (y - (b[i] - m_loo)) / np.sqrt(1.0 / a2[i] + 1.0 / prec_loo)
    z[a2[i] == 0] = np.nan
    return z


def simulate_times(person: ArrayLike, item: ArrayLike, tau: ArrayLike, beta: ArrayLike,
                   alpha: ArrayLike, rng: np.random.Generator) -> NDArray[np.float64]:
    """Seconds drawn from the model for the given (person, item) pairs."""
    p = np.asarray(person, dtype=np.int64)
    i = np.asarray(item, dtype=np.int64)
    t = np.asarray(tau, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    return np.exp(b[i] - t[p] + rng.standard_normal(p.size) / a[i])
