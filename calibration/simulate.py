"""Seeded generator of adaptive-test response logs, for calibration studies (tests, benchmarks).

Calibrating from adaptive-test logs is hard because the data are sparse and *not missing at
random*: which items a person saw depends on their ability. `simulate_adaptive_responses` makes
such logs fast for every person at once (vectorized over persons), without the CAT engine:

1. the first item is drawn uniformly at random (a random start, as when pretesting);
2. every next item is drawn at random among the ``top_k`` unused items with the largest Fisher
   information at the person's current EAP estimate (randomesque maximum information;
   Kingsbury & Zara 1989), with θ̂ updated on a grid after every answer (Bock & Mislevy 1982).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from irt import Bank, SparseResponses, category_probabilities, item_information
from irt.simulate import RandomState, as_generator

#: θ grid of the running EAP and of the information lookup table.
EAP_NODES = np.linspace(-5.0, 5.0, 41)
INFO_GRID = np.linspace(-4.0, 4.0, 161)


def simulate_adaptive_responses(theta: ArrayLike, bank: Bank, test_length: int,
                                rng: RandomState = None, *, top_k: int = 5) -> SparseResponses:
    """Responses of ``len(theta)`` simulees to fixed-length adaptive tests on ``bank``.

    Parameters
    ----------
    theta : true abilities ``(n_persons,)``.
    bank : the items (any mix of models) with their true parameters.
    test_length : items per person (``<= len(bank)``).
    rng : generator or seed.
    top_k : randomesque width (1 = pure maximum information).

    Returns
    -------
    SparseResponses
        One row per administered item, ``test_length`` rows per person, in administration order.
    """
    g = as_generator(rng)
    t = np.asarray(theta, dtype=float)
    n_p, n_i = t.shape[0], len(bank)
    if not 1 <= test_length <= n_i:
        raise ValueError(f"test_length must be in [1, {n_i}], got {test_length}")
    if not 1 <= top_k <= n_i:
        raise ValueError(f"top_k must be in [1, {n_i}], got {top_k}")
    width = min(n_i, top_k + test_length)
    info = item_information(INFO_GRID, bank)  # (G, n_items)
    ranked = np.argsort(-info, axis=1)[:, :width]  # best items per grid point
    log_p = np.log(np.clip(category_probabilities(EAP_NODES, bank), 1e-300, 1.0))  # (Q, I, K)
    log_p = np.transpose(log_p, (1, 2, 0))  # (I, K, Q)
    log_post = np.broadcast_to(-0.5 * EAP_NODES**2, (n_p, EAP_NODES.size)).copy()
    used = np.zeros((n_p, n_i), dtype=bool)
    items = np.empty((n_p, test_length), dtype=np.int64)
    answers = np.empty((n_p, test_length), dtype=np.int64)
    rows = np.arange(n_p)
    for step in range(test_length):
        if step == 0:
            choice = g.integers(0, n_i, n_p)
        else:
            post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
            est = (post @ EAP_NODES) / post.sum(axis=1)
            grid = np.clip(np.searchsorted(INFO_GRID, est), 0, INFO_GRID.size - 1)
            cand = ranked[grid]  # (n_p, width)
            free = ~used[rows[:, None], cand]
            # the k-th free candidate, k uniform in [0, min(top_k, n_free))
            n_free = free.sum(axis=1)
            pick = np.floor(g.random(n_p) * np.minimum(top_k, n_free)).astype(np.int64)
            order = np.cumsum(free, axis=1) - 1
            hit = free & (order == pick[:, None])
            choice = cand[rows, np.argmax(hit, axis=1)]
        used[rows, choice] = True
        probs: np.ndarray = category_probabilities_paired(t, bank, np.asarray(choice))
        u = np.asarray(g.random(n_p))[:, None]
        x = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)
        items[:, step], answers[:, step] = choice, x
        log_post += log_p[choice, x]
    person = np.repeat(np.arange(n_p, dtype=np.int64), test_length)
    return SparseResponses(person, items.ravel(), answers.ravel(), n_p, n_i)


def category_probabilities_paired(theta: np.ndarray, bank: Bank, items: np.ndarray
                                  ) -> np.ndarray:
    """``P(X = k | θ_p)`` of person ``p`` on item ``items[p]``: shape ``(n_persons, K_max)``."""
    from irt import paired_category_derivatives

    return paired_category_derivatives(theta, bank.rows(items), order=0)[0]


def simulate_option_choices(theta: ArrayLike, bank: Bank, responses: SparseResponses,
                            keys: ArrayLike, true_keys: ArrayLike, n_options: int,
                            rng: RandomState = None) -> tuple[SparseResponses, np.ndarray]:
    """Chosen options of multiple-choice items, and the scores a (possibly wrong) key gives.

    For every response of ``responses`` (simulated with the *true* key in mind: category 1 means
    the person knew the answer), the chosen option is ``true_keys[item]`` for a 1 and a uniformly
    drawn other option for a 0. The returned responses are re-scored against ``keys``: an item
    whose key differs from its true key is *miskeyed*, and its recorded scores then fall as
    ability rises. Returns the re-scored responses and the chosen option per response (0-based).
    """
    g = as_generator(rng)
    keys_arr = np.asarray(keys, dtype=np.int64)
    true_arr = np.asarray(true_keys, dtype=np.int64)
    if keys_arr.shape != (len(bank),) or true_arr.shape != (len(bank),):
        raise ValueError("keys and true_keys need one option per item")
    true_k = true_arr[responses.item]
    other = g.integers(0, n_options - 1, responses.n_responses)
    other = other + (other >= true_k)             # uniform over the options but the true key
    chosen = np.where(responses.response == 1, true_k, other)
    scored = (chosen == keys_arr[responses.item]).astype(np.int64)
    return (SparseResponses(responses.person, responses.item, scored, responses.n_persons,
                            responses.n_items), chosen)
