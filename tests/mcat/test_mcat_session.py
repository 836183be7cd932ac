"""The multidimensional engine as a session: stopping, honesty of the SEs, serialization,
exposure control, errors."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import AlreadyAnsweredError, NotServedError, SessionFinishedError
from engine.simulation import simulate
from tests.mcat.conftest import mcat as McatEngine


def _run(eng, answers, seed, roundtrip_at=None):
    state = eng.start(seed=seed)
    step = 0
    while state.stop_reason is None:
        state = eng.record(state, state.pending, int(answers[eng.pool.index(state.pending)]))
        step += 1
        if step == roundtrip_at:
            state = engine.CatState.from_json(state.to_json())
    return state


@pytest.fixture(scope="module")
def study(make_bank, make_corr):
    """200 simulees on 3 skills correlated 0.6; MCAT vs separate per-skill CATs."""
    bank = make_bank(3, 120, seed=7)
    r = make_corr(3, 0.6)
    g = np.random.default_rng(11)
    theta = g.multivariate_normal(np.zeros(3), r, size=200)
    bp = engine.Blueprint(max_items=60, se_target=0.35)
    mcat = McatEngine(bank, bp, correlations=r)
    uni = engine.CatEngine(bank, bp)
    answers = engine.simulation.draw_answers(uni, theta, g)
    return mcat, simulate(mcat, theta, answers=answers), simulate(uni, theta, answers=answers)


def test_reported_se_is_honest(study):
    _, res, _ = study
    rmse = np.sqrt(((res.theta_hat - res.theta_true) ** 2).mean(axis=0))
    mean_se = res.se.mean(axis=0)
    assert np.all(np.abs(rmse / mean_se - 1.0) <= 0.15), (rmse, mean_se)


def test_stops_when_every_skill_is_at_target_and_is_shorter(study):
    _, res, uni = study
    ok = np.array([s == "se_target" for s in res.stop_reason])
    assert ok.mean() > 0.95
    assert np.all(res.se[ok] <= 0.35)
    assert np.all(res.test_length <= 60)
    # borrowing strength across correlated skills: fewer items at the same precision
    assert res.test_length.mean() < 0.95 * uni.test_length.mean()


def test_state_roundtrip_continues_identically(make_bank, make_corr):
    bank = make_bank(3, 60, seed=3)
    eng = McatEngine(bank, engine.Blueprint(max_items=25, se_target=0.3),
                     correlations=make_corr(3, 0.5))
    answers = np.random.default_rng(1).integers(0, 2, len(bank))
    a = _run(eng, answers, seed=9)
    b = _run(eng, answers, seed=9, roundtrip_at=6)
    assert [e.item_id for e in a.events] == [e.item_id for e in b.events]
    assert eng.estimates(a) == eng.estimates(b)
    fresh = engine.make_engine(bank, engine.Blueprint.from_json(eng.blueprint.to_json()))
    assert fresh.estimates(engine.CatState.from_json(a.to_json())) == eng.estimates(a)


def test_skill_limits_and_errors(make_bank, make_corr):
    bank = make_bank(3, 40, seed=4)
    bp = engine.Blueprint(skills=(engine.SkillSpec("s0", 3, 5), engine.SkillSpec("s1"),
                                  engine.SkillSpec("s2", 0, 4)), max_items=14, se_target=0.1)
    eng = McatEngine(bank, bp, correlations=make_corr(3, 0.4))
    answers = np.random.default_rng(2).integers(0, 2, len(bank))
    state = _run(eng, answers, seed=1)
    est = eng.estimates(state)
    assert state.stop_reason == "max_items" and state.n_items == 14
    assert 3 <= est["s0"].n_items <= 5 and est["s2"].n_items <= 4
    with pytest.raises(SessionFinishedError):
        eng.record(state, state.events[0].item_id, 1)
    s1 = eng.start(seed=2)
    with pytest.raises(NotServedError):
        eng.record(s1, next(i for i in bank.item_ids if i != s1.pending), 1)
    s2 = eng.record(s1, s1.pending, 1)
    with pytest.raises(AlreadyAnsweredError):
        eng.record(s2, s1.pending, 0)
    assert eng.estimates(s1)["s0"].method == "prior"


def test_simulation_equals_live_sessions(make_bank, make_corr):
    """The multidimensional blueprint through the one step: the batch equals the sessions."""
    bank = make_bank(3, 50, seed=12)
    bp = engine.Blueprint(max_items=20, se_target=0.4, exposure=engine.Randomesque(k=3),
                          stopping=(engine.CompositeSE(0.3, min_items={"s1": 2}),))
    eng = McatEngine(bank, bp, correlations=make_corr(3, 0.5))
    theta = np.random.default_rng(3).normal(size=(8, 3))
    answers = engine.simulation.draw_answers(eng, theta, 4)
    seeds = [engine.derive_seed(bp.seed, p) for p in range(8)]
    res = simulate(eng, theta, answers=answers, seeds=seeds)
    for p in range(8):
        state = _run(eng, answers[p], seeds[p], roundtrip_at=3)
        est = eng.estimates(state)
        assert res.stop_reason[p] == state.stop_reason
        assert [bank.item_ids[i] for i in res.items[p] if i >= 0] == [
            e.item_id for e in state.events]
        for k, s in enumerate(eng.skill_names):
            assert (res.theta_hat[p, k], res.se[p, k]) == (est[s].theta, est[s].se)


def test_exposure_control_is_reused(make_bank, make_corr):
    bank = make_bank(2, 60, seed=5)
    bp = engine.Blueprint(max_items=10, se_target=None, exposure=engine.Randomesque(k=4))
    eng = McatEngine(bank, bp, correlations=make_corr(2, 0.5))
    firsts = {eng.start(seed=s).pending for s in range(40)}
    ranks = {eng.start(seed=s).pending_audit.rank for s in range(40)}
    assert len(firsts) == 4 and ranks == {1, 2, 3, 4}
    plain = McatEngine(bank, engine.Blueprint(max_items=10, se_target=None),
                       correlations=make_corr(2, 0.5))
    assert len({plain.start(seed=s).pending for s in range(10)}) == 1


def test_pretest_items_are_served_unscored(make_bank, make_corr):
    bank = make_bank(2, 50, seed=6)
    status = ["pretest" if i % 10 == 0 else "operational" for i in range(len(bank))]
    pool = engine.ItemPool(bank, status=status)
    bp = engine.Blueprint(max_items=12, se_target=None, pretest_count=2)
    eng = McatEngine(pool, bp, correlations=make_corr(2, 0.5))
    state = _run(eng, np.ones(len(bank), dtype=int), seed=3)
    pre = [e for e in state.events if not e.scored]
    assert len(pre) == 2 and all(pool.status[pool.index(e.item_id)] == "pretest" for e in pre)
    assert [k + 1 for k, e in enumerate(state.events) if not e.scored] == [2, 4]
    assert state.n_items == 12
