"""Seeded generators of item parameters and simulated responses (tests, benchmarks, demos).

Every function takes ``rng``: a `numpy.random.Generator` or a seed; nothing uses the global
random state.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from irt.models import as_theta, category_derivatives, paired_category_derivatives
from irt.params import DICHOTOMOUS_MODELS, MODELS, Bank, ItemParams
from irt.responses import SparseResponses

# a string, so that importing `irt` does not import numpy.random (~9 ms of every start-up)
RandomState: TypeAlias = "np.random.Generator | int | None"


def as_generator(rng: RandomState) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def generate_items(n_items: int, model: str = "2pl", rng: RandomState = None, *,
                   n_categories: int = 4, skill: str = "default", prefix: str = "i",
                   a_logsd: float = 0.25, b_sd: float = 1.0) -> Bank:
    """Draw a bank of ``n_items`` items of one model.

    ``a ~ lognormal(0, a_logsd)`` (1pl: one common a; the same draw for all items),
    ``b ~ N(0, b_sd²)``, ``c ~ Beta(5, 17)`` (mean 0.23, 3PL/4PL), ``d ~ U(0.9, 1)`` (4PL);
    GRM thresholds are sorted ``N(b, 1)`` draws spread at least 0.3 apart; GPCM step parameters
    are ``b + N(0, 0.7²)`` draws.
    """
    model = model.lower()
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
    if n_items < 0:
        raise ValueError("n_items must be >= 0")
    g = as_generator(rng)
    a = np.exp(g.normal(0.0, a_logsd, n_items))
    if model == "1pl":
        a[:] = a[0] if n_items else 1.0
    b = g.normal(0.0, b_sd, n_items)
    items = []
    for i in range(n_items):
        iid = f"{prefix}{i + 1:04d}"
        if model in DICHOTOMOUS_MODELS:
            c = float(g.beta(5, 17)) if model in ("3pl", "4pl") else 0.0
            d = float(g.uniform(0.9, 1.0)) if model == "4pl" else 1.0
            items.append(ItemParams(iid, model, a[i], b[i], c, d, skill=skill))
        else:
            k = n_categories - 1
            if k < 1:
                raise ValueError("n_categories must be >= 2")
            if model == "grm":
                steps = np.sort(g.normal(0.0, 1.0, k))
                steps = steps - steps.mean() + b[i]
                for j in range(1, k):
                    steps[j] = max(steps[j], steps[j - 1] + 0.3)
            else:
                steps = b[i] + g.normal(0.0, 0.7, k)
            items.append(ItemParams(iid, model, a[i], thresholds=tuple(steps), skill=skill))
    return Bank.from_params(items)


def _draw(probs: NDArray, g: np.random.Generator) -> NDArray[np.int64]:
    """Inverse-CDF draws from the last axis of ``probs``."""
    cdf = np.cumsum(probs, axis=-1)
    u = g.random(probs.shape[:-1])[..., None]
    return np.minimum((u > cdf).sum(axis=-1), probs.shape[-1] - 1).astype(np.int64)


def simulate_responses(theta: ArrayLike, bank: Bank, rng: RandomState = None
                       ) -> NDArray[np.int64]:
    """A dense ``(n_persons, n_items)`` matrix of scored responses drawn from the model."""
    g = as_generator(rng)
    t = as_theta(theta)
    if bank.all_dichotomous:
        p = category_derivatives(t, bank, order=0)[0][..., 1]
        return (g.random(p.shape) < p).astype(np.int64)
    return _draw(category_derivatives(t, bank, order=0)[0], g)


def simulate_sparse_responses(theta: ArrayLike, bank: Bank, items_per_person: int,
                              rng: RandomState = None) -> SparseResponses:
    """Each person answers ``items_per_person`` items drawn at random (missing completely at
    random); returns the long format, drawing only the observed responses."""
    g = as_generator(rng)
    t = as_theta(theta)
    n_p, n_i = t.shape[0], len(bank)
    if not 0 <= items_per_person <= n_i:
        raise ValueError(f"items_per_person must be in [0, {n_i}], got {items_per_person}")
    keys = g.random((n_p, n_i)) if n_p * n_i <= 50_000_000 else None
    if keys is not None:
        item = np.argpartition(keys, items_per_person - 1, axis=1)[:, :items_per_person] \
            if items_per_person else np.zeros((n_p, 0), dtype=np.int64)
    else:
        item = np.stack([g.choice(n_i, items_per_person, replace=False) for _ in range(n_p)])
    item = np.sort(item, axis=1).ravel().astype(np.int64)
    person = np.repeat(np.arange(n_p, dtype=np.int64), items_per_person)
    probs = paired_category_derivatives(t[person], bank.rows(item), order=0)[0]
    return SparseResponses(person, item, _draw(probs, g), n_p, n_i)
