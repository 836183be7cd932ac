"""Replaying stored sessions (engine.replay): the stored answers re-score to the stored θ̂ and SE
after every answer (to 1e-9), and the engine serves every stored item again with the same audit;
a changed answer or a changed bank is detected, never hidden."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.replay import TOLERANCE, replay

HERE = Path(__file__).parent / "saved_states"


def _fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", HERE / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FIX = _fixtures()
#: One blueprint per engine kind: unidimensional EAP per skill, multidimensional MAP with
#: correlated skills, shadow test.
KINDS = {"eap": "mfi_se_pretest", "mcat_map": "mcat_correlated", "shadow": "shadow"}


def _pool() -> engine.ItemPool:
    bank = FIX.mixed_bank()
    return engine.ItemPool(bank, **FIX.pool_facts(bank))


def live_session(eng: engine.CatEngine, answers: np.ndarray, seed: int) -> engine.CatState:
    """A session as the web runs it: the state stored as JSON between answers."""
    state = eng.start(seed=seed)
    while eng.finished(state) is None:
        item = eng.next_item(state)
        state = eng.record(state, item, int(answers[eng.pool.index(item)]))
        state = engine.CatState.from_json(state.to_json())
    return state


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_replay_reproduces_scores_and_items(kind: str) -> None:
    bp_json = engine.Blueprint.from_dict(FIX.CASES[KINDS[kind]]).to_json()
    live = engine.make_engine(_pool(), engine.Blueprint.from_json(bp_json))
    if kind == "mcat_map":
        assert live.scorer.name == "map"
    g = np.random.default_rng(21)
    for seed in range(12):
        answers = np.array([g.integers(0, k) for k in live.pool.bank.n_categories])
        stored = live_session(live, answers, seed)
        # a fresh engine, as a replay in another process builds it
        fresh = engine.make_engine(_pool(), engine.Blueprint.from_json(bp_json))
        rep = replay(fresh, engine.CatState.from_json(stored.to_json()))
        assert rep.items_reproduced, rep.first_divergence
        assert rep.max_trajectory_difference <= TOLERANCE
        assert rep.stop_reason == stored.stop_reason
        assert dict(rep.decisions) == dict(stored.decisions)
        final = live.estimates(stored)
        for s, est in rep.estimates.items():
            assert abs(est.theta - final[s].theta) <= TOLERANCE
            assert abs(est.se - final[s].se) <= TOLERANCE
        assert all(s.audit.balance for s in rep.steps)


def test_a_changed_answer_is_detected() -> None:
    bp = engine.Blueprint.from_dict(FIX.CASES["mfi_se_pretest"])
    eng = engine.make_engine(_pool(), bp)
    answers = np.ones(len(eng.pool), dtype=int)
    stored = live_session(eng, answers, 3)
    k = next(i for i, e in enumerate(stored.events) if e.scored and i > 0)
    events = list(stored.events)
    events[k] = dataclasses.replace(events[k], response=0)
    forged = dataclasses.replace(stored, events=tuple(events), _memo=None)
    rep = replay(engine.make_engine(_pool(), bp), forged)
    assert rep.max_trajectory_difference > 1e-6
    assert rep.steps[k].difference > 1e-6
    assert all(s.difference == 0.0 for s in rep.steps[:k])


def test_a_changed_bank_is_reported_as_a_divergence() -> None:
    bp = engine.Blueprint.from_dict(FIX.CASES["mfi_se_pretest"])
    eng = engine.make_engine(_pool(), bp)
    stored = live_session(eng, np.zeros(len(eng.pool), dtype=int), 5)
    served = [e.item_id for e in stored.events if e.scored]
    bank = FIX.mixed_bank()
    facts = FIX.pool_facts(bank)
    retire = served[-1]
    facts["status"][bank.item_ids.index(retire)] = "retired"
    rep = replay(engine.make_engine(engine.ItemPool(bank, **facts), bp), stored)
    assert not rep.items_reproduced
    at = next(s for s in rep.steps if s.item_id == retire)
    assert not at.item_reproduced and at.replayed_item != retire
    assert rep.first_divergence is not None and rep.first_divergence <= at.position
    # the stored answers still re-score to the stored trajectory
    assert rep.max_trajectory_difference <= TOLERANCE
