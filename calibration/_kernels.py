"""Per-model kernels of the M-step: category probabilities and their parameter Jacobians.

Every item family works in an unbounded *internal* parameterization (slope–intercept, logits),
which keeps Fisher scoring stable and makes EM extrapolation (SQUAREM) safe:

* dichotomous ``φ = (a, δ, γ, υ)``: ``z = aθ + δ`` (so ``b = −δ/a``),
  ``c = σ(γ)``, ``d = σ(υ)``; ``P = c + (d − c) σ(z)``. Columns a model lacks are fixed
  (``c = 0``, ``d = 1``);
* GRM ``φ = (a, δ_1 … δ_{K−1})``: ``P*_k = σ(aθ + δ_k)`` with ``δ_1 > … > δ_{K−1}``
  (``b_k = −δ_k/a``), ``P_k = P*_k − P*_{k+1}`` (Samejima 1969);
* GPCM (and PCM, RSM) ``φ = (a, δ_1 … δ_{K−1})``: ``z_k = Σ_{v≤k} (aθ + δ_v)``,
  ``P_k = e^{z_k}/Σ_j e^{z_j}`` (``b_v = −δ_v/a``; Muraki 1992).

The slope ``a`` is the raw slope, free to change sign (an item that runs against the scale has
``a < 0``), as in mirt's slope–intercept form (Chalmers 2012); the slope–intercept form stays
regular through ``a = 0``, where ``b`` does not exist.

For a multinomial item with expected counts ``r_kq`` at node ``θ_q`` (``n_q = Σ_k r_kq``) the
M-step objective is ``Σ_q Σ_k r_kq log P_k(θ_q; φ)``, with gradient
``Σ_q Σ_k r_kq ∂_φ P_k / P_k`` and expected (Fisher) information
``Σ_q n_q Σ_k ∂_φ P_k ∂_φ P_kᵀ / P_k`` (Bock & Aitkin 1981; Baker & Kim 2004, ch. 6–7), which is
positive semi-definite for every model, so a Fisher-scoring step is an ascent direction.

Array shapes: parameters ``(n, m)``, probabilities ``(n, Q, K)``, Jacobians ``(n, Q, K, m)``.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
from numpy.typing import NDArray

#: Probabilities are floored here before division and logs.
P_FLOOR = 1e-10

KIND_DICHOTOMOUS, KIND_GRM, KIND_GPCM = "dichotomous", "grm", "gpcm"


def sigmoid(x: NDArray) -> NDArray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# The Jacobian is None exactly when jacobian=False; the overloads say so to the type checker.
@overload
def probabilities(kind: str, phi: NDArray, nodes: NDArray, jacobian: Literal[True] = ...
                  ) -> tuple[NDArray, NDArray]: ...
@overload
def probabilities(kind: str, phi: NDArray, nodes: NDArray, jacobian: Literal[False]
                  ) -> tuple[NDArray, None]: ...
@overload
def probabilities(kind: str, phi: NDArray, nodes: NDArray, jacobian: bool = ...
                  ) -> tuple[NDArray, NDArray | None]: ...
def probabilities(kind: str, phi: NDArray, nodes: NDArray, jacobian: bool = True
                  ) -> tuple[NDArray, NDArray | None]:
    """Category probabilities ``(n, Q, K)`` and, optionally, ``∂P/∂φ`` ``(n, Q, K, m)``."""
    if kind == KIND_DICHOTOMOUS:
        return _dichotomous(phi, nodes, jacobian)
    if kind == KIND_GRM:
        return _grm(phi, nodes, jacobian)
    return _gpcm(phi, nodes, jacobian)


def _dichotomous(phi: NDArray, nodes: NDArray, jacobian: bool):
    a = phi[:, 0][:, None]
    s = sigmoid(a * nodes[None, :] + phi[:, 1][:, None])
    c = sigmoid(phi[:, 2])[:, None]
    d = sigmoid(phi[:, 3])[:, None]
    p1 = c + (d - c) * s
    p = np.stack([1.0 - p1, p1], axis=-1)
    if not jacobian:
        return p, None
    w = (d - c) * s * (1.0 - s)
    j1 = np.stack([w * nodes[None, :], w, (1.0 - s) * c * (1.0 - c), s * d * (1.0 - d)],
                  axis=-1)
    return p, np.stack([-j1, j1], axis=2)


def _grm(phi: NDArray, nodes: NDArray, jacobian: bool):
    n, m = phi.shape
    a = phi[:, 0]
    star = sigmoid(a[:, None, None] * nodes[None, :, None] + phi[:, None, 1:])  # (n, Q, K-1)
    edge = (n, nodes.shape[0], 1)
    full = np.concatenate([np.ones(edge), star, np.zeros(edge)], axis=-1)
    p = full[..., :-1] - full[..., 1:]
    if not jacobian:
        return p, None
    w = star * (1.0 - star)
    wf = np.concatenate([np.zeros(edge), w, np.zeros(edge)], axis=-1)  # (n, Q, K+1)
    k = m  # number of categories = (K-1 thresholds) + 1
    jac = np.zeros((n, nodes.shape[0], k, m))
    jac[..., 0] = nodes[None, :, None] * (wf[..., :-1] - wf[..., 1:])
    for t in range(1, m):  # intercept t enters P*_t: + in category t, − in category t − 1
        jac[:, :, t, t] = w[..., t - 1]
        jac[:, :, t - 1, t] = -w[..., t - 1]
    return p, jac


def _gpcm(phi: NDArray, nodes: NDArray, jacobian: bool):
    n, m = phi.shape
    a = phi[:, 0]
    kk = np.arange(m, dtype=float)  # categories 0..K-1 with K = m
    lin = a[:, None, None] * nodes[None, :, None] * kk[None, None, :]
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(phi[:, 1:], axis=1)], axis=1)
    z = lin + cum[:, None, :]
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    if not jacobian:
        return p, None
    dz = np.zeros((n, nodes.shape[0], m, m))
    dz[..., 0] = nodes[None, :, None] * kk[None, None, :]
    tri = (np.arange(1, m)[None, :] <= kk[:, None]).astype(float)  # (K, m-1): v <= k
    dz[..., 1:] = tri[None, None, :, :]
    mean_dz = np.einsum("nqk,nqkm->nqm", p, dz)
    return p, p[..., None] * (dz - mean_dz[:, :, None, :])


def valid(kind: str, phi: NDArray) -> NDArray[np.bool_]:
    """Rows whose parameters define a proper model (finite; GRM intercepts decreasing)."""
    ok = np.all(np.isfinite(phi), axis=1)
    if kind == KIND_GRM and phi.shape[1] > 2:
        ok &= np.all(np.diff(phi[:, 1:], axis=1) < 0, axis=1)
    return ok


def objective_terms(p: NDArray, r: NDArray) -> NDArray:
    """``Σ_q Σ_k r_kq log P_k(θ_q)`` per item; ``r`` is ``(n, K, Q)``, ``p`` is ``(n, Q, K)``."""
    return np.einsum("nkq,nqk->n", r, np.log(np.maximum(p, P_FLOOR)))


def score_and_information(p: NDArray, jac: NDArray, r: NDArray) -> tuple[NDArray, NDArray]:
    """Gradient ``(n, m)`` and expected information ``(n, m, m)`` of the M-step objective."""
    pf = np.maximum(p, P_FLOOR)
    ratio = np.transpose(r, (0, 2, 1)) / pf  # r_kq / P_kq, (n, Q, K)
    grad = np.einsum("nqk,nqkm->nm", ratio, jac)
    nq = r.sum(axis=1)  # (n, Q)
    wj = jac * (nq[:, :, None] / pf)[..., None]
    info = np.einsum("nqkm,nqkl->nml", wj, jac)
    return grad, info


def log_derivatives(p: NDArray, jac: NDArray) -> NDArray:
    """``∂ log P_k(θ_q)/∂φ`` as ``(n, K, Q, m)`` (per-person scores for standard errors)."""
    return np.transpose(jac / np.maximum(p, P_FLOOR)[..., None], (0, 2, 1, 3))
