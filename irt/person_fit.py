"""Person fit for dichotomous items: the standardized log-likelihood lz and Snijders' lz*.

For answers x_i with model probabilities P_i = P_i(θ̂), Q_i = 1 − P_i, and weights
w_i = ln(P_i/Q_i), the centred log-likelihood is ``W = Σ (x_i − P_i) w_i``. With θ known,
``lz = W / √(Σ P_i Q_i w_i²)`` is asymptotically N(0, 1) (Drasgow, Levine & Williams 1985).
With θ estimated, Snijders (2001) corrects the weights for the estimation,

    r_i = P_i′ / (P_i Q_i),  c_n = Σ P_i′ w_i / Σ P_i′ r_i,  w̃_i = w_i − c_n r_i,
    lz* = (W + c_n r_0(θ̂)) / √(Σ w̃_i² P_i Q_i),

where r_0 is the estimator's extra term in its estimating equation Σ (x_i − P_i) r_i + r_0 = 0:
0 for maximum likelihood, J/(2I) for Warm's WLE (J = Σ P_i′P_i″/(P_i Q_i), I = Σ P_i′²/(P_i Q_i)),
and −(θ − μ)/σ² for the mode of a N(μ, σ²) posterior. Small (negative) values mean misfit.

References: T. A. B. Snijders (2001), "Asymptotic null distribution of person fit statistics
with estimated person parameter", Psychometrika 66(3), 331–342; D. Magis, G. Raîche & S. Béland
(2012), "A didactic presentation of Snijders's lz* index of person fit with emphasis on response
model selection and ability estimation", Journal of Educational and Behavioral Statistics 37(1),
57–81. In adaptive tests lz* is not N(0, 1) (items are tailored to θ̂), so decisions use a null
distribution simulated from the model for the same design (see `calibration.forensics`).
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from irt.models import paired_category_derivatives
from irt.params import Bank

ESTIMATORS = ("ml", "wle", "map")
#: Probabilities are kept inside [PROB_EDGE, 1 − PROB_EDGE] for the log-odds weights.
PROB_EDGE = 1e-9


def lz_star(person: ArrayLike, item: ArrayLike, response: ArrayLike, theta: ArrayLike,
            bank: Bank, *, estimator: str = "wle", prior_mean: float = 0.0,
            prior_sd: float = 1.0) -> NDArray[np.float64]:
    """Snijders' lz* per person from long-format answers (``item`` indexes ``bank``).

    ``theta`` holds each person's estimate by ``estimator`` ('ml', 'wle' or 'map' under
    N(prior_mean, prior_sd²)). Persons without answers, or whose answers carry no information,
    get NaN.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not bank.all_dichotomous:
        raise ValueError("lz* is defined here for dichotomous items only")
    p_idx = np.asarray(person, dtype=np.int64).reshape(-1)
    i_idx = np.asarray(item, dtype=np.int64).reshape(-1)
    x = np.asarray(response, dtype=np.float64).reshape(-1)
    t = np.asarray(theta, dtype=np.float64).reshape(-1)
    if not (p_idx.shape == i_idx.shape == x.shape):
        raise ValueError("person, item and response must have the same length")
    n = t.size
    probs, d1, d2 = paired_category_derivatives(t[p_idx], bank.take(i_idx), order=2)
    p = np.clip(probs[:, 1], PROB_EDGE, 1.0 - PROB_EDGE)
    pq = p * (1.0 - p)
    p1, p2 = d1[:, 1], d2[:, 1]
    w = np.log(p) - np.log1p(-p)
    r = p1 / pq

    def per(v: NDArray[np.float64]) -> NDArray[np.float64]:
        # weighted bincount returns float64; numpy's stubs type every bincount as intp
        return cast(NDArray[np.float64], np.bincount(p_idx, v, n))

    big_w = per((x - p) * w)
    denom = per(p1 * r)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = per(p1 * w) / denom
        if estimator == "ml":
            r0 = np.zeros(n)
        elif estimator == "wle":
            r0 = per(p1 * p2 / pq) / (2.0 * denom)
        else:
            r0 = -(t - prior_mean) / prior_sd**2
        w_tilde = w - c[p_idx] * r
        var = per(w_tilde**2 * pq)
        out = (big_w + c * r0) / np.sqrt(var)
    out[~(np.isfinite(out) & (var > 0))] = np.nan
    return out
