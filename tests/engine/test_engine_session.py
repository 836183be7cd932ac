"""Session behaviour: errors leave the state unchanged, JSON state, pretest seeding, scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine
import irt


@pytest.fixture(scope="module")
def eng(mixed_bank):
    return engine.CatEngine(mixed_bank, engine.Blueprint(max_items=12))


def test_errors_leave_state_unchanged(eng):
    state = eng.start(seed=5)
    item = eng.next_item(state)
    state = eng.record(state, item, 1)
    before = state.to_json()
    nxt = eng.next_item(state)
    other = next(i for i in eng.pool.bank.item_ids if i not in (item, nxt))
    k = int(eng.pool.bank.n_categories[eng.pool.index(nxt)])
    cases = [
        (engine.AlreadyAnsweredError, item, 0),
        (engine.NotServedError, other, 0),
        (engine.UnknownItemError, "no-such-item", 0),
        (engine.ResponseOutOfRangeError, nxt, k),
        (engine.ResponseOutOfRangeError, nxt, -1),
        (engine.ResponseOutOfRangeError, nxt, "1"),
        (engine.ResponseOutOfRangeError, nxt, 0.5),
        (engine.ResponseOutOfRangeError, nxt, True),
    ]
    for exc, iid, resp in cases:
        with pytest.raises(exc) as info:
            eng.record(state, iid, resp)
        assert isinstance(info.value, engine.EngineError)
        assert isinstance(info.value, ValueError)
        assert state.to_json() == before
    # the state still works, and equals a run that never saw the errors
    clean = eng.record(eng.record(eng.start(seed=5), item, 1), nxt, 0)
    assert eng.record(state, nxt, 0).to_json() == clean.to_json()


def test_finished_session_rejects_answers(eng):
    state = eng.start(seed=1)
    while not state.finished:
        state = eng.record(state, state.pending, 0)
    assert state.stop_reason == "max_items" and state.n_items == 12
    with pytest.raises(engine.SessionFinishedError):
        eng.record(state, eng.pool.bank.item_ids[0], 0)


def test_state_json_is_plain_and_without_parameters(eng):
    state = eng.start(seed=2)
    for r in (1, 0, 1):
        state = eng.record(state, state.pending, r)
    data = json.loads(state.to_json())
    text = state.to_json()
    assert set(data) == {"version", "seed", "events", "pending", "pending_audit", "trajectory",
                         "decisions", "stop_reason"}
    for key in ('"a"', '"b"', '"thresholds"', '"c"'):
        assert key not in text
    # the trajectory: one (θ, SD) per response of each skill, matching irt.eap on the grid
    assert sum(len(v) for v in data["trajectory"].values()) == 3
    restored = engine.CatState.from_json(text)
    assert restored.to_json() == text
    assert eng.next_item(restored) == eng.next_item(state)
    for bad in ('{"version": 99}', "[1]", "{", '{"version": 1}'):
        with pytest.raises(engine.EngineError):
            engine.CatState.from_json(bad)


def test_eap_trajectory_matches_irt_eap(mixed_bank):
    eng = engine.CatEngine(mixed_bank, engine.Blueprint(skills=("db",), max_items=10))
    state = eng.start(seed=3)
    g = np.random.default_rng(0)
    while not state.finished:
        i = eng.pool.index(state.pending)
        state = eng.record(state, state.pending, int(g.integers(mixed_bank.n_categories[i])))
    ev = [e for e in state.events if e.skill == "db"]
    nodes = eng.nodes
    w = np.exp(-0.5 * nodes**2)
    quad = irt.Quadrature(nodes, w / w.sum())
    for k, point in enumerate(state.trajectory["db"]):
        sub = mixed_bank.take([mixed_bank.index(e.item_id) for e in ev[: k + 1]])
        ref = irt.eap(np.array([[e.response for e in ev[: k + 1]]]), sub, quadrature=quad)
        assert point.theta == pytest.approx(ref.theta[0], abs=1e-9)
        assert point.se == pytest.approx(ref.se[0], abs=1e-9)
    # MLE / WLE on request equal the IRT core's estimators
    x = np.array([[e.response for e in ev]])
    sub = mixed_bank.take([mixed_bank.index(e.item_id) for e in ev])
    for method, fn in (("mle", irt.mle), ("wle", irt.wle)):
        est = eng.estimates(state, method=method)["db"]
        ref = fn(x, sub)
        assert est.theta == pytest.approx(ref.theta[0]) and est.se == pytest.approx(ref.se[0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=25), st.integers(0, 2**32))
def test_correct_never_lowers_theta(bank_500, answers, seed):
    eng = engine.CatEngine(bank_500, engine.Blueprint(se_target=None, max_items=25))
    state = eng.start(seed=seed)
    theta = 0.0
    for x in answers:
        state = eng.record(state, state.pending, int(x))
        new = state.trajectory["default"][-1].theta
        # (1e-12: rounding of the weighted mean when the posterior sits on the grid's edge)
        assert (new >= theta - 1e-12) if x else (new <= theta + 1e-12)
        theta = new
    # all-correct / all-wrong patterns stay finite and inside the grid
    assert np.isfinite(theta) and abs(theta) < 5


def test_pretest_items_are_seeded_unscored(mixed_bank):
    ids = mixed_bank.item_ids
    status = ["pretest" if k % 10 == 0 else "operational" for k in range(len(ids))]
    pool = engine.ItemPool(mixed_bank, status=status)
    bp = engine.Blueprint(max_items=10, se_target=None, pretest_count=3,
                          pretest_positions=(2, 5, 7))
    eng = engine.CatEngine(pool, bp)
    plain = engine.CatEngine(pool, engine.Blueprint(max_items=10, se_target=None))
    state, ref = eng.start(seed=4), plain.start(seed=4)
    while not state.finished:
        state = eng.record(state, state.pending, 1)
    while not ref.finished:
        ref = plain.record(ref, ref.pending, 1)
    kinds = [e.scored for e in state.events]
    assert [k + 1 for k, s in enumerate(kinds) if not s] == [2, 5, 7]
    for e in state.events:
        assert (status[mixed_bank.index(e.item_id)] == "pretest") == (not e.scored)
        assert (e.audit.rule == "pretest") == (not e.scored)
    # pretest items never affect θ or the operational sequence
    assert [e.item_id for e in state.events if e.scored] == [e.item_id for e in ref.events]
    assert eng.estimates(state) == plain.estimates(ref)
    assert engine.CatState.from_json(state.to_json()).to_json() == state.to_json()


def test_content_balancing_follows_weights(mixed_bank):
    skills = (engine.SkillSpec("api", weight=2.0), engine.SkillSpec("db"),
              engine.SkillSpec("sec"))
    eng = engine.CatEngine(mixed_bank, engine.Blueprint(skills=skills, se_target=None,
                                                        max_items=20))
    state = eng.start(seed=0)
    while not state.finished:
        state = eng.record(state, state.pending, 1)
        n = {s: len(v) for s, v in state.trajectory.items()}
        total = sum(n.values())
        # Kingsbury-Zara keeps every skill within one item of its target share
        assert abs(n["api"] - total / 2) <= 1 and abs(n["db"] - total / 4) <= 1
    assert {s: len(v) for s, v in state.trajectory.items()} == {"api": 10, "db": 5, "sec": 5}


def test_bad_configuration(mixed_bank):
    with pytest.raises(engine.ConfigurationError, match="skill 'nope'"):
        engine.CatEngine(mixed_bank, engine.Blueprint(skills=("nope",)))
    with pytest.raises(engine.ConfigurationError, match="status"):
        engine.ItemPool(mixed_bank, status=["operational"] * 3)
    with pytest.raises(engine.ConfigurationError, match=r"'x'.*status"):
        engine.ItemPool(irt.Bank.dichotomous([1.0], [0.0], item_ids=["x"]), status=["live"])
    with pytest.raises(engine.ConfigurationError, match="unknown item 'zz'"):
        engine.ItemPool(mixed_bank, enemy_groups=[("zz", "api0001")])
    with pytest.raises(engine.ConfigurationError, match="min_items"):
        engine.Blueprint(min_items=5, max_items=3)
    with pytest.raises(engine.ConfigurationError, match="unknown name"):
        engine.Blueprint.from_dict({"selector": {"name": "best"}})
    with pytest.raises(engine.ConfigurationError, match="unknown setting"):
        engine.Blueprint.from_dict({"exposure": {"name": "randomesque", "kk": 3}})
    with pytest.raises(engine.ConfigurationError, match="0 < K <= 1"):
        engine.SympsonHetter({"api0001": 1.5})


def test_prior_start_per_skill(mixed_bank):
    start = engine.PriorStart(mean={"api": 1.0, "db": -0.5}, sd={"api": 0.8})
    bp = engine.Blueprint(skills=("api", "db", "sec"), start=start, max_items=9)
    assert engine.Blueprint.from_json(bp.to_json()) == bp
    eng = engine.CatEngine(mixed_bank, bp)
    state = eng.start(seed=0)
    # before any response each skill reports its prior, and its first item is chosen there
    est = eng.estimates(state)
    assert (est["api"].theta, est["api"].se) == (1.0, 0.8)
    assert (est["db"].theta, est["db"].se) == (-0.5, 1.0)
    assert (est["sec"].theta, est["sec"].se) == (0.0, 1.0)
    first = {}
    while not state.finished:
        audit = state.pending_audit
        first.setdefault(audit.skill, audit.theta)
        state = eng.record(state, state.pending, 0)
    assert first == {"api": 1.0, "db": -0.5, "sec": 0.0}
    # the api prior N(1, 0.8²) is the EAP prior: one wrong answer, then compare with irt.eap
    e = next(ev for ev in state.events if ev.skill == "api")
    sub = mixed_bank.take([mixed_bank.index(e.item_id)])
    ref = irt.eap(np.array([[0]]), sub, prior_mean=1.0, prior_sd=0.8, n_nodes=401)
    assert state.trajectory["api"][0].theta == pytest.approx(ref.theta[0], abs=2e-3)
