"""Fixtures of the CAT engine tests: small multi-skill pools, mixed models, and a driver."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import engine
import irt


def _merge(*banks: irt.Bank) -> irt.Bank:
    return irt.Bank.from_params([p for b in banks for p in b.params()])


@pytest.fixture(scope="session")
def mixed_bank() -> irt.Bank:
    """Three skills: 2PL, 3PL + GRM, GPCM + 2PL; 40 items each."""
    return _merge(
        irt.generate_items(40, "2pl", 1, skill="api", prefix="api"),
        irt.generate_items(25, "3pl", 2, skill="db", prefix="db3_"),
        irt.generate_items(15, "grm", 3, skill="db", prefix="dbg_", n_categories=4),
        irt.generate_items(20, "gpcm", 4, skill="sec", prefix="secp", n_categories=3),
        irt.generate_items(20, "2pl", 5, skill="sec", prefix="sec2_"),
    )


@pytest.fixture(scope="session")
def bank_500() -> irt.Bank:
    """The 500-item 2PL bank of the accuracy checks: a ~ |N(1.2, 0.25)|, b ~ N(0, 1) (the
    distributions of Barrada et al. 2010, as catsim draws them)."""
    g = np.random.default_rng(500)
    a = np.abs(g.normal(1.2, 0.25, 500))
    b = g.normal(0.0, 1.0, 500)
    return irt.Bank.dichotomous(a, b)


def run_session(eng: engine.CatEngine, answers: np.ndarray, seed: int,
                roundtrip_at: int | None = None) -> engine.CatState:
    """Drive one session with pre-drawn ``answers`` (per bank position) to its end."""
    state = eng.start(seed=seed)
    step = 0
    while eng.finished(state) is None:
        item = eng.next_item(state)
        state = eng.record(state, item, int(answers[eng.pool.index(item)]))
        step += 1
        if roundtrip_at is not None and step == roundtrip_at:
            fresh = engine.CatEngine(eng.pool, engine.Blueprint.from_json(
                eng.blueprint.to_json()))
            state = engine.CatState.from_json(state.to_json())
            eng = fresh
    return state


@pytest.fixture
def driver() -> Callable[..., engine.CatState]:
    return run_session
