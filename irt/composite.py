"""A weighted composite of several skills' abilities: the overall score of a multi-skill test.

For skills with ability vector θ (K,) and weights w (normalised to Σ w = 1), the composite is
``θ_c = wᵀ θ``. Given a posterior (or sampling) covariance Σ of θ̂, its standard error is
``SE(θ̂_c) = √(wᵀ Σ w)`` (the variance of a linear combination); in a population whose θ has
correlation matrix R and standard deviations s, the composite's spread is
``SD(θ_c) = √(wᵀ diag(s) R diag(s) w)``, which sets its reporting scale. See e.g. Wang, Chen &
Cheng (2004), "Improving measurement precision of test batteries using multidimensional item
response models", Psychological Methods 9(1), on composite scores of a test battery.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def normalized_weights(weights: ArrayLike) -> NDArray[np.float64]:
    """Weights scaled to sum to 1; all must be finite and ≥ 0 with a positive sum."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"composite weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    return w / w.sum()


def composite_estimate(theta: ArrayLike, cov: ArrayLike, weights: ArrayLike
                       ) -> tuple[float, float]:
    """``(wᵀ θ̂, √(wᵀ Σ w))`` for normalised weights w; ``cov`` is Σ (K, K) or the skills' SEs
    (K,) when they are independent (Σ = diag(SE²))."""
    t = np.asarray(theta, dtype=np.float64).reshape(-1)
    w = normalized_weights(weights)
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim == 1:
        c = np.diag(c**2)
    if t.shape != w.shape or c.shape != (t.size, t.size):
        raise ValueError(f"composite: theta {t.shape}, weights {w.shape} and covariance "
                         f"{c.shape} do not match")
    var = float(w @ c @ w)
    return float(w @ t), float(np.sqrt(max(var, 0.0)))


def composite_sd(correlation: ArrayLike, weights: ArrayLike,
                 sds: Sequence[float] | None = None) -> float:
    """Population SD of the composite, ``√(wᵀ D R D w)`` with D = diag(sds) (default 1)."""
    w = normalized_weights(weights)
    r = np.asarray(correlation, dtype=np.float64)
    d = np.ones_like(w) if sds is None else np.asarray(sds, dtype=np.float64)
    if r.shape != (w.size, w.size) or d.shape != w.shape:
        raise ValueError("composite_sd: correlation, weights and sds do not match")
    cov = r * np.outer(d, d)
    return float(np.sqrt(w @ cov @ w))


def deshrunk_interval(theta: float, se: float, prior_mean: float, prior_sd: float,
                      z: float) -> tuple[float, float, float, float]:
    """A frequentist interval for a score reported as a posterior mean (normal approximation).

    Under a normal prior N(μ, τ²) and a normal likelihood of SD σ, the posterior mean is
    ``θ̂ = λ μ + (1 − λ) x`` with ``λ = σ²/(σ² + τ²)`` and posterior variance ``v = λ τ²``,
    where x is the (unshrunk) likelihood estimate. From θ̂ and ``v = SE²``:
    ``λ = v / τ²``, ``σ² = v / (1 − λ)`` and ``x = (θ̂ − λ μ)/(1 − λ)``. The interval
    ``x ± z σ`` covers the true θ with probability about 1 − 2Φ(−z) *for every θ*, where the
    posterior interval ``θ̂ ± z SE`` covers too rarely far from μ and too often near it.

    Returns ``(x, σ, lower, upper)``; when the posterior is not narrower than the prior
    (nothing was learned) the interval is unbounded.
    """
    x, sigma, lo, hi = deshrunk_intervals(np.array([theta]), np.array([se]), prior_mean,
                                          prior_sd, z)
    return float(x[0]), float(sigma[0]), float(lo[0]), float(hi[0])


def deshrunk_intervals(theta: ArrayLike, se: ArrayLike, prior_mean: float, prior_sd: float,
                       z: float) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                          NDArray[np.float64], NDArray[np.float64]]:
    """`deshrunk_interval` for arrays of scores ``theta`` and their ``se`` (same shape):
    ``(x, σ, lower, upper)``, each element by the same formula."""
    t = np.asarray(theta, dtype=np.float64)
    v = np.asarray(se, dtype=np.float64) ** 2
    tau2 = prior_sd * prior_sd
    ok = (v >= 0) & (v < tau2) if tau2 > 0 else np.zeros(t.shape, dtype=bool)
    lam = np.where(ok, v / tau2 if tau2 > 0 else 0.0, 0.0)
    sigma = np.where(ok, np.sqrt(np.where(ok, v, 0.0) / (1.0 - lam)), np.inf)
    x = np.where(ok, (t - lam * prior_mean) / (1.0 - lam), t)
    lo = np.where(ok, x - z * sigma, -np.inf)
    hi = np.where(ok, x + z * sigma, np.inf)
    return x, sigma, lo, hi


def composite_variance_reduction(cov_w: ArrayLike, var_s: ArrayLike, info: ArrayLike
                                 ) -> NDArray[np.float64]:
    """How much one more item reduces the posterior variance of the composite ``wᵀθ``
    (c-optimality; van der Linden 1999; Mulder & van der Linden 2009).

    An item loading on skill s only (between-item multidimensionality) with Fisher information
    ``I`` at the current estimate adds ``I e_s e_sᵀ`` to the posterior precision ``Σ⁻¹``. By the
    Sherman–Morrison formula the new covariance is ``Σ' = Σ − I Σ e_s e_sᵀ Σ / (1 + I Σ_ss)``,
    so ::

        Var(wᵀθ) − Var'(wᵀθ) = (Σ w)_s² · I / (1 + Σ_ss · I)

    ``cov_w`` is ``(Σ w)_s``, ``var_s`` is ``Σ_ss`` and ``info`` is I; they broadcast (e.g.
    ``(n, 1)``, ``(n, 1)`` and ``(n, m)`` for n sessions and m candidate items). With
    independent skills ``(Σ w)_s = w_s Σ_ss``. The reduction is increasing in I, so within one
    skill it ranks items like maximum information; across skills it weighs each by how much
    its uncertainty still contributes to the composite's.

    References: van der Linden, W. J. (1999). Multidimensional adaptive testing with a minimum
    error-variance criterion. Journal of Educational and Behavioral Statistics 24(4), 398–412.
    Mulder, J. & van der Linden, W. J. (2009). Multidimensional adaptive testing with optimal
    design criteria for item selection. Psychometrika 74(2), 273–296.
    """
    cw = np.asarray(cov_w, dtype=np.float64)
    v = np.asarray(var_s, dtype=np.float64)
    i = np.asarray(info, dtype=np.float64)
    return cw * cw * i / (1.0 + v * i)
