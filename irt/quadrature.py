"""Quadrature rules for integrating over a normal latent distribution.

``∫ f(θ) φ(θ; μ, σ) dθ ≈ Σ_q w_q f(θ_q)`` with weights that sum to one.

* `normal_grid`: equally spaced nodes on ``[μ − Rσ, μ + Rσ]`` with weights proportional to the
  normal density (Bock & Aitkin 1981; the BILOG/mirt default; also used for empirical
  histograms, whose weights are then re-estimated).
* `gauss_hermite`: Gauss–Hermite nodes rescaled to N(μ, σ²) (exact for polynomials of degree
  ``2n − 1`` times the normal density; Abramowitz & Stegun 25.4.46).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Default number of nodes and half-width (in SDs) of the fixed grid.
DEFAULT_NODES = 61
DEFAULT_RANGE = 6.0


@dataclass(frozen=True, eq=False)
class Quadrature:
    """Nodes ``(n_nodes,)`` and weights ``(n_nodes,)`` summing to one."""

    nodes: NDArray[np.float64]
    weights: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.nodes.ndim != 1 or self.nodes.shape != self.weights.shape:
            raise ValueError("quadrature nodes and weights must be 1-D arrays of equal length")
        if np.any(self.weights < 0) or not np.isclose(self.weights.sum(), 1.0):
            raise ValueError("quadrature weights must be non-negative and sum to one")

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def log_weights(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore"):
            return np.log(self.weights)


def normal_grid(n_nodes: int = DEFAULT_NODES, mean: float = 0.0, sd: float = 1.0,
                half_width: float = DEFAULT_RANGE) -> Quadrature:
    """Equally spaced nodes on ``mean ± half_width·sd`` with normal-density weights."""
    if n_nodes < 2:
        raise ValueError(f"n_nodes must be >= 2, got {n_nodes}")
    if not sd > 0:
        raise ValueError(f"sd must be > 0, got {sd}")
    z = np.linspace(-half_width, half_width, n_nodes)
    w = np.exp(-0.5 * z * z)
    return Quadrature(mean + sd * z, w / w.sum())


def gauss_hermite(n_nodes: int = 41, mean: float = 0.0, sd: float = 1.0) -> Quadrature:
    """Gauss–Hermite rule for N(mean, sd²) (probabilists' Hermite polynomials)."""
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    if not sd > 0:
        raise ValueError(f"sd must be > 0, got {sd}")
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    return Quadrature(mean + sd * z, w / w.sum())
