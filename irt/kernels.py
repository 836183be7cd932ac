"""Hot-loop kernels for dichotomous items: the same formulas as `irt.models`, on plain parameter
arrays, with the logistic taken as the pair ``(σ(x), σ(−x))`` from one ``e = exp(−|x|)`` so both
keep their relative precision in the far tails (``1 − P`` by subtraction and the tanh form round
to 0 there). Used by the CAT engine, where one step evaluates a whole skill's items at one θ.

References: Birnbaum (1968) and Lord (1980, eq. 5-6) for the information of the 3PL/4PL;
Bock & Mislevy (1982) for EAP on a grid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from irt.models import PROB_FLOOR, paired_category_derivatives
from irt.params import Bank


def logistic_information(theta: NDArray[np.float64], a: NDArray[np.float64],
                         b: NDArray[np.float64], a2: NDArray[np.float64] | None = None
                         ) -> NDArray[np.float64]:
    """2PL Fisher information ``I(θ) = a² σ(x) σ(−x)``, ``x = a(θ − b)``, as
    ``a² e / (1 + e)²`` with ``e = exp(−|x|)`` (no cancellation; exact to rounding everywhere).

    ``theta`` is ``(n,)`` (one θ per row) or ``(n, m)`` (one per row and item), the item arrays
    ``(m,)``; returns ``(n, m)``. ``a2`` (= ``a²``) may be passed precomputed. Two ``(n, m)``
    buffers, every step in place.
    """
    h = (theta[:, None] if theta.ndim == 1 else theta) - b
    h *= a
    np.abs(h, out=h)
    np.negative(h, out=h)
    np.exp(h, out=h)
    den = h + 1.0
    den *= den
    h /= den
    h *= a * a if a2 is None else a2
    return h


def dichotomous_information(theta: NDArray[np.float64], a: NDArray[np.float64],
                            b: NDArray[np.float64], c: NDArray[np.float64],
                            d: NDArray[np.float64]) -> NDArray[np.float64]:
    """4PL Fisher information ``I = P′² / (P Q)`` with ``P = c + (d − c)σ(x)``,
    ``Q = (1 − d) + (d − c)σ(−x)``, ``P′ = (d − c) a σ(x) σ(−x)`` (Lord 1980, eq. 5-6).

    ``theta`` broadcasts against the item arrays (``(n, 1)`` against ``(m,)`` for a grid, or
    paired ``(k,)`` against ``(k,)``).
    """
    p, q, p1 = _dichotomous_terms(theta, a, b, c, d)
    pq = p * q
    return np.divide(p1 * p1, pq, out=np.zeros_like(pq), where=pq > 0)


def dichotomous_score(theta: NDArray[np.float64], a: NDArray[np.float64],
                      b: NDArray[np.float64], c: NDArray[np.float64], d: NDArray[np.float64],
                      x: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Paired score ``∂ log P(x | θ)/∂θ`` (``P′/P`` for x = 1, ``−P′/Q`` for x = 0) and
    information ``P′²/(P Q)`` of response ``x[j]`` to item ``j`` at ``theta[j]``."""
    p, q, p1 = _dichotomous_terms(theta, a, b, c, d)
    tiny = np.finfo(float).tiny
    score = np.where(x == 1, p1 / np.maximum(p, tiny), -p1 / np.maximum(q, tiny))
    pq = p * q
    return score, np.divide(p1 * p1, pq, out=np.zeros_like(pq), where=pq > 0)


def _dichotomous_terms(theta, a, b, c, d):
    x = a * (theta - b)
    e = np.exp(-np.abs(x))
    inv = 1.0 / (1.0 + e)
    small = e * inv
    pos = x >= 0
    s, s_bar = np.where(pos, inv, small), np.where(pos, small, inv)
    span = d - c
    return c + span * s, (1.0 - d) + span * s_bar, span * a * s * s_bar


def eap_on_grid(log_post: NDArray[np.float64], nodes: NDArray[np.float64]
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """EAP and posterior SD from unnormalized log posteriors ``(n, n_nodes)`` on ``nodes`` (or
    one row ``(n_nodes,)``, giving 0-d results).

    ``θ̂ = Σ_q θ_q w_q / Σ_q w_q``, ``SD² = Σ_q (θ_q − θ̂)² w_q / Σ_q w_q`` with
    ``w_q = exp(log p_q − max log p)`` (Bock & Mislevy 1982). Row-wise reductions over the
    contiguous last axis only (the same pairwise summation for a row alone, 1-D, or within a
    batch), so a row gets bit-identical numbers either way; the 1-D form is the cheaper call
    for a live session.
    """
    # ufunc reductions called directly (``x.sum`` is ``np.add.reduce`` behind a Python wrapper)
    w = log_post - np.maximum.reduce(log_post, axis=-1)[..., None]
    np.exp(w, out=w)
    total = np.add.reduce(w, axis=-1)
    theta = np.add.reduce(w * nodes, axis=-1) / total
    dev = nodes - theta[..., None]
    wdd = w * dev
    wdd *= dev
    return theta, np.sqrt(np.add.reduce(wdd, axis=-1) / total)


def paired_score_information(bank: Bank, theta: NDArray[np.float64], items: NDArray[np.int64],
                             x: NDArray[np.int64]
                             ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per response ``j``: ``∂ log P(x_j | θ_j)/∂θ`` and the Fisher information of item
    ``items[j]`` of ``bank`` at ``theta[j]``; each element depends only on its own item,
    response and θ (dichotomous items in closed form, polytomous through
    `irt.paired_category_derivatives`: ``P′_x/P_x`` and ``Σ_k P′_k²/P_k``)."""
    dich = bank.model_code[items] == 0
    if dich.all():
        return dichotomous_score(theta, bank.a[items], bank.b[items], bank.c[items],
                                 bank.d[items], x)
    grad, info = np.empty(items.size), np.empty(items.size)
    if dich.any():
        i = items[dich]
        grad[dich], info[dich] = dichotomous_score(theta[dich], bank.a[i], bank.b[i], bank.c[i],
                                                   bank.d[i], x[dich])
    poly = ~dich
    p, p1 = paired_category_derivatives(theta[poly], bank.take(items[poly]), order=1)
    pc = np.clip(p, PROB_FLOOR, None)
    j = np.arange(p.shape[0])
    grad[poly] = p1[j, x[poly]] / pc[j, x[poly]]
    info[poly] = np.sum(np.where(p > PROB_FLOOR, p1 * p1 / pc, 0.0), axis=-1)
    return grad, info
