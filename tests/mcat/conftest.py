"""Fixtures of the multidimensional-CAT and shadow-test tests: multi-skill 2PL banks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import engine
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


def mcat(pool, blueprint=None, correlations=None) -> engine.CatEngine:
    """The multidimensional engine of issue 9 through the blueprint: MAP under N(μ, D R D),
    D-optimal selection (``correlations`` default: the identity)."""
    bp = blueprint if blueprint is not None else engine.Blueprint()
    bank = pool.bank if isinstance(pool, engine.ItemPool) else pool
    skills = bp.skills or tuple(engine.SkillSpec(s) for s in dict.fromkeys(bank.skills))
    k = len(skills)
    r = np.eye(k) if correlations is None else np.asarray(correlations, dtype=float)
    return engine.make_engine(pool, replace(bp, skills=skills,
                                            correlations=tuple(map(tuple, r.tolist()))))


def score(eng: engine.CatEngine, items, resp):
    """MAP θ̂ (K,) and Laplace covariance (K, K) of one response pattern."""
    theta, cov = eng.scorer.score(eng, np.asarray(items, dtype=np.int64)[None],
                                  np.asarray(resp, dtype=np.int64)[None])
    return theta[0], cov[0]


def precision(eng: engine.CatEngine) -> np.ndarray:
    return np.linalg.inv(eng.prior_cov)
