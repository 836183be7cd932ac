"""Item response functions, their θ-derivatives, and Fisher information.

All public functions take ``theta`` of shape ``(n_theta,)`` (a scalar is promoted) and a `Bank`
of ``n_items`` items and return arrays of shape ``(n_theta, n_items)`` or
``(n_theta, n_items, K_max)``; categories an item does not have hold probability 0.

Formulas (Lord 1980, ch. 2; Samejima 1969; Muraki 1992; Baker & Kim 2004, ch. 2, 8, 9):

* dichotomous: ``P = c + (d − c) s``, ``s = 1/(1 + e^{−a(θ−b)})``;
  ``P′ = (d − c) a s(1 − s)``, ``P″ = (d − c) a² s(1 − s)(1 − 2s)``.
* GRM: ``P*_k = σ(a(θ − b_k))`` with ``P*_0 = 1``, ``P*_K = 0``; ``P_k = P*_k − P*_{k+1}``;
  ``P*′ = a P*(1 − P*)``, ``P*″ = a² P*(1 − P*)(1 − 2P*)``.
* GPCM: ``z_k = Σ_{v≤k} a(θ − b_v)``, ``P_k = e^{z_k}/Σ_j e^{z_j}``; with ``m = E[X]`` and
  ``V = Var[X]``: ``P_k′ = a P_k (k − m)`` and ``P_k″ = a² P_k ((k − m)² − V)``.
* Fisher information of an item: ``I(θ) = Σ_k P_k′² / P_k`` (for the 2PL ``a² P(1 − P)``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from irt.params import DICHOTOMOUS, GPCM, GRM, Bank

#: Probabilities are clipped to [PROB_FLOOR, 1 − PROB_FLOOR] before taking logs.
PROB_FLOOR = 1e-12


def as_theta(theta: ArrayLike) -> NDArray[np.float64]:
    """``theta`` as a 1-D float array; raises on NaN or non-numeric values."""
    t = np.atleast_1d(np.asarray(theta, dtype=float))
    if t.ndim != 1:
        raise ValueError(f"theta must be a scalar or 1-D array, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("theta contains NaN or infinite values")
    return t


def _sigmoid_pair(x: NDArray) -> tuple[NDArray, NDArray]:
    """``(σ(x), σ(−x))`` from one ``exp(−|x|)``: overflow-safe, and both keep their relative
    precision in the far tails (``1 − σ(x)`` by subtraction, or the tanh form, round to 0)."""
    e = np.exp(-np.abs(x))
    inv = 1.0 / (1.0 + e)
    small = e * inv
    big = x >= 0
    return np.where(big, inv, small), np.where(big, small, inv)


def _sigmoid(x: NDArray) -> NDArray:
    return _sigmoid_pair(x)[0]


def _dichotomous(theta: NDArray, a: NDArray, b: NDArray, c: NDArray, d: NDArray, order: int):
    # theta broadcasts against the item arrays: (n_theta, 1) for outer, (n,) for paired.
    s, s_bar = _sigmoid_pair(a * (theta - b))
    p = c + (d - c) * s
    q = (1.0 - d) + (d - c) * s_bar
    out = [np.stack([q, p], axis=-1)]
    if order >= 1:
        ds = s * s_bar
        p1 = (d - c) * a * ds
        out.append(np.stack([-p1, p1], axis=-1))
        if order >= 2:
            p2 = (d - c) * a * a * ds * (1.0 - 2.0 * s)
            out.append(np.stack([-p2, p2], axis=-1))
    return out


def _grm(theta: NDArray, a: NDArray, th: NDArray, order: int):
    # th: (n_items, K-1) NaN padded; cumulative probabilities with P*_0 = 1 and P*_K = 0.
    z = a[:, None] * (theta[..., None] - th)
    s = np.where(np.isnan(z), 0.0, _sigmoid(np.nan_to_num(z)))
    edge = (*s.shape[:-1], 1)
    one, zero = np.ones(edge), np.zeros(edge)
    star = np.concatenate([one, s, zero], axis=-1)
    out = [star[..., :-1] - star[..., 1:]]
    if order >= 1:
        ds = s * (1.0 - s)
        d1 = np.concatenate([zero, a[:, None] * ds, zero], axis=-1)
        out.append(d1[..., :-1] - d1[..., 1:])
        if order >= 2:
            d2 = np.concatenate([zero, (a * a)[:, None] * ds * (1.0 - 2.0 * s), zero], axis=-1)
            out.append(d2[..., :-1] - d2[..., 1:])
    return out


def _gpcm(theta: NDArray, a: NDArray, th: NDArray, order: int):
    valid = ~np.isnan(th)
    steps = a[:, None] * (theta[..., None] - np.nan_to_num(th))
    edge = (*steps.shape[:-1], 1)
    z = np.concatenate([np.zeros(edge), np.cumsum(steps, axis=-1)], axis=-1)
    mask = np.concatenate([np.ones((th.shape[0], 1), bool), valid], axis=-1)  # (n_items, K)
    z = np.where(mask, z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    out = [p]
    if order >= 1:
        k = np.arange(th.shape[1] + 1, dtype=float)
        m = (p * k).sum(axis=-1, keepdims=True)
        dev = k - m
        aa = a[:, None]
        out.append(aa * p * dev)
        if order >= 2:
            var = (p * dev * dev).sum(axis=-1, keepdims=True)
            out.append(aa * aa * p * (dev * dev - var))
    return out


def _evaluate(theta_b: NDArray, bank: Bank, order: int, lead: tuple[int, ...]) -> list[NDArray]:
    """Run each model's kernel on its items; ``theta_b`` broadcasts against the item axis."""
    n_i, kmax = len(bank), bank.max_categories
    out = [np.zeros((*lead, n_i, kmax)) for _ in range(order + 1)]
    if n_i == 0:
        return out
    paired = theta_b.ndim == 1
    for code in (DICHOTOMOUS, GRM, GPCM):
        idx = np.flatnonzero(bank.model_code == code)
        if idx.size == 0:
            continue
        whole = idx.size == n_i
        sel = slice(None) if whole else idx
        t = theta_b if (whole or not paired) else theta_b[idx]
        if code == DICHOTOMOUS:
            parts = _dichotomous(t, bank.a[sel], bank.b[sel], bank.c[sel], bank.d[sel], order)
        elif code == GRM:
            parts = _grm(t, bank.a[sel], bank.thresholds[sel], order)
        else:
            parts = _gpcm(t, bank.a[sel], bank.thresholds[sel], order)
        k = parts[0].shape[-1]
        if whole and k == kmax:
            return parts
        for dst, src in zip(out, parts, strict=True):
            dst[..., sel, :k] = src[..., :k]
    return out


def category_derivatives(theta: ArrayLike, bank: Bank, order: int = 2) -> list[NDArray]:
    """Category probabilities and their first ``order`` θ-derivatives on a θ grid.

    Returns a list ``[P, P′, P″][: order + 1]`` of arrays of shape ``(n_theta, n_items, K_max)``.
    """
    t = as_theta(theta)
    return _evaluate(t[:, None], bank, order, (t.shape[0],))


def paired_category_derivatives(theta: ArrayLike, bank: Bank, order: int = 2) -> list[NDArray]:
    """Like `category_derivatives` but pairing ``theta[j]`` with item ``j`` (one row per response).

    ``bank`` is typically ``full_bank.take(item_index)`` for a long-format response list, so the
    cost grows with the number of responses, not persons × items. Shape ``(n, K_max)``.
    """
    t = as_theta(theta)
    if t.shape[0] != len(bank):
        raise ValueError(f"paired evaluation needs one theta per item row: got {t.shape[0]} "
                         f"thetas for {len(bank)} items")
    return _evaluate(t, bank, order, ())


def category_probabilities(theta: ArrayLike, bank: Bank) -> NDArray[np.float64]:
    """``P(X = k | θ)`` for every θ, item and category: shape ``(n_theta, n_items, K_max)``."""
    return category_derivatives(theta, bank, order=0)[0]


def probability(theta: ArrayLike, bank: Bank) -> NDArray[np.float64]:
    """Probability of a correct (category-1) response for dichotomous items.

    ``P(θ) = c + (d − c)/(1 + exp(−a(θ − b)))``; shape ``(n_theta, n_items)``.
    """
    if not bank.all_dichotomous:
        raise ValueError("probability() is for dichotomous items; use category_probabilities()")
    t = as_theta(theta)
    return bank.c + (bank.d - bank.c) * _sigmoid(bank.a * (t[:, None] - bank.b))


def expected_score(theta: ArrayLike, bank: Bank) -> NDArray[np.float64]:
    """Expected item score ``E[X | θ] = Σ_k k P_k(θ)``: shape ``(n_theta, n_items)``."""
    p = category_probabilities(theta, bank)
    return p @ np.arange(p.shape[-1], dtype=float)


def item_information(theta: ArrayLike, bank: Bank) -> NDArray[np.float64]:
    """Fisher information ``I_i(θ) = Σ_k P_ik′(θ)² / P_ik(θ)``: shape ``(n_theta, n_items)``.

    For the 2PL this equals ``a² P (1 − P)``; for the 3PL
    ``a² (Q/P) ((P − c)/(1 − c))²`` (Lord 1980, eq. 5-6 with D = 1).
    """
    if bank.all_dichotomous:
        t = as_theta(theta)
        x = bank.a * (t[:, None] - bank.b)
        s, s_bar = _sigmoid_pair(x)
        span = bank.d - bank.c
        p = bank.c + span * s
        q = (1.0 - bank.d) + span * s_bar
        p1 = span * bank.a * s * s_bar
        pq = p * q
        return np.divide(p1 * p1, pq, out=np.zeros_like(pq), where=pq > 0)
    p, p1 = category_derivatives(theta, bank, order=1)
    return np.sum(np.divide(p1 * p1, p, out=np.zeros_like(p), where=p > PROB_FLOOR), axis=-1)


def test_information(theta: ArrayLike, bank: Bank) -> NDArray[np.float64]:
    """Test information ``I(θ) = Σ_i I_i(θ)``: shape ``(n_theta,)``."""
    return item_information(theta, bank).sum(axis=-1)


test_information.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
