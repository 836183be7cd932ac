"""Proficio's IRT core: pure, vectorized item response theory (numpy/scipy only).

Conventions shared by every package (written once, here):

* **Parameterization** — logistic, D = 1. Dichotomous ``P(θ) = c + (d − c)/(1 + e^{−a(θ − b)})``
  (1PL: one common ``a``; Rasch: ``a = 1`` with the latent SD free; 2PL: ``c = 0, d = 1``; 3PL
  adds ``c``; 4PL adds ``d``). GRM ``P(X ≥ k) = σ(a(θ − b_k))``;
  GPCM ``P(X = k) ∝ e^{Σ_{v≤k} a(θ − b_v)}``.
* **Shapes** — θ arrays are ``(n_theta,)``; item-level results ``(n_theta, n_items)``; category
  results ``(n_theta, n_items, K_max)`` with probability 0 for categories an item lacks.
* **Responses** — dense matrices are persons × items; missing data is a mask (NaN or an explicit
  boolean ``mask``, True = observed); `SparseResponses` is the long format (one row per response).
* **Scale** — θ ~ N(0, 1) per skill unless linking says otherwise; MLE is bounded by
  `THETA_BOUNDS`; WLE only where no interior estimate exists (extreme patterns beyond them).

References are collected in ``docs/references.md``.
"""

from irt.estimation import (
    THETA_BOUNDS,
    AbilityEstimates,
    eap,
    log_likelihood,
    log_likelihood_derivatives,
    log_likelihood_grid,
    map_estimate,
    mle,
    wle,
    wle_curvature,
)
from irt.models import (
    category_derivatives,
    category_probabilities,
    expected_score,
    item_information,
    paired_category_derivatives,
    probability,
    test_information,
)
from irt.params import (
    DICHOTOMOUS_MODELS,
    MODELS,
    PARTIAL_CREDIT_MODELS,
    POLYTOMOUS_MODELS,
    RASCH_MODELS,
    Bank,
    ItemParams,
)
from irt.quadrature import Quadrature, gauss_hermite, normal_grid
from irt.responses import SparseResponses
from irt.simulate import generate_items, simulate_responses, simulate_sparse_responses

__all__ = [
    "DICHOTOMOUS_MODELS",
    "MODELS",
    "PARTIAL_CREDIT_MODELS",
    "POLYTOMOUS_MODELS",
    "RASCH_MODELS",
    "THETA_BOUNDS",
    "AbilityEstimates",
    "Bank",
    "ItemParams",
    "Quadrature",
    "SparseResponses",
    "category_derivatives",
    "category_probabilities",
    "eap",
    "expected_score",
    "gauss_hermite",
    "generate_items",
    "item_information",
    "log_likelihood",
    "log_likelihood_derivatives",
    "log_likelihood_grid",
    "map_estimate",
    "mle",
    "normal_grid",
    "paired_category_derivatives",
    "probability",
    "simulate_responses",
    "simulate_sparse_responses",
    "test_information",
    "wle",
    "wle_curvature",
]
