"""Fixtures of the multidimensional-CAT and shadow-test tests: multi-skill 2PL banks."""

from __future__ import annotations

import numpy as np
import pytest

import irt


def skill_bank(n_skills: int, per_skill: int, seed: int, a_mean: float = 1.4) -> irt.Bank:
    """``n_skills`` skills ``s0…`` of ``per_skill`` 2PL items: a ~ N(a_mean, 0.3²) clipped at
    0.5, b ~ N(0, 1)."""
    g = np.random.default_rng(seed)
    items = []
    for k in range(n_skills):
        a = np.clip(g.normal(a_mean, 0.3, per_skill), 0.5, None)
        b = g.normal(0.0, 1.0, per_skill)
        items += [irt.ItemParams(f"s{k}_{i:03d}", "2pl", a[i], b[i], skill=f"s{k}")
                  for i in range(per_skill)]
    return irt.Bank.from_params(items)


def equicorrelation(k: int, rho: float) -> np.ndarray:
    r = np.full((k, k), rho)
    np.fill_diagonal(r, 1.0)
    return r


@pytest.fixture(scope="session")
def bank3() -> irt.Bank:
    return skill_bank(3, 80, seed=31)


@pytest.fixture(scope="session")
def make_bank():
    return skill_bank


@pytest.fixture(scope="session")
def make_corr():
    return equicorrelation
