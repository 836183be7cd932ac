"""Multidimensional scoring: MAP + Laplace under a multivariate normal prior, D-optimality."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.optimize import minimize

import engine
import irt
from engine.errors import ConfigurationError
from engine.rules import ALL
from tests.mcat.conftest import mcat, precision, score


def _neg_log_post(theta, eng, items, resp):
    rows = eng.pool.bank.rows(np.asarray(items))
    t = theta[eng.skill_pos[np.asarray(items)]]
    p = irt.paired_category_derivatives(t, rows, order=0)[0]
    ll = np.log(p[np.arange(len(items)), resp]).sum()
    d = theta - eng.prior_mean
    return -(ll - 0.5 * d @ precision(eng) @ d)


def test_map_equals_generic_optimizer_and_laplace_equals_numeric_hessian(bank3, make_corr):
    r = make_corr(3, 0.6)
    eng = mcat(bank3, engine.Blueprint(), correlations=r)
    g = np.random.default_rng(4)
    items = g.choice(len(bank3), 25, replace=False)
    resp = g.integers(0, 2, 25)
    theta, cov = score(eng, items, resp)
    ref = minimize(_neg_log_post, np.zeros(3), args=(eng, items, resp), method="BFGS",
                   options={"gtol": 1e-9})
    np.testing.assert_allclose(theta, ref.x, atol=1e-5)
    # 2PL: observed = expected information, so the Laplace covariance is the inverse Hessian
    h = 1e-4
    hess = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            e_i, e_j = np.eye(3)[i] * h, np.eye(3)[j] * h
            hess[i, j] = (_neg_log_post(theta + e_i + e_j, eng, items, resp)
                          - _neg_log_post(theta + e_i - e_j, eng, items, resp)
                          - _neg_log_post(theta - e_i + e_j, eng, items, resp)
                          + _neg_log_post(theta - e_i - e_j, eng, items, resp)) / (4 * h * h)
    np.testing.assert_allclose(cov, np.linalg.inv(hess), rtol=1e-4)


def test_independent_skills_reduce_to_per_skill_map(bank3):
    eng = mcat(bank3, engine.Blueprint())  # identity correlations
    g = np.random.default_rng(5)
    items = g.choice(len(bank3), 30, replace=False)
    resp = g.integers(0, 2, 30)
    theta, cov = score(eng, items, resp)
    for k, s in enumerate(eng.skill_names):
        mine = [i for i in items if bank3.skills[i] == s]
        x = np.array([[resp[list(items).index(i)] for i in mine]])
        ref = irt.map_estimate(x, bank3.take(mine))
        assert theta[k] == pytest.approx(ref.theta[0], abs=1e-6)
        assert np.sqrt(cov[k, k]) == pytest.approx(ref.se[0], rel=1e-6)
    assert np.allclose(cov - np.diag(np.diag(cov)), 0.0)


def test_answers_on_one_skill_move_the_correlated_others(bank3, make_corr):
    eng = mcat(bank3, engine.Blueprint(), correlations=make_corr(3, 0.7))
    s0 = bank3.skill_indices("s0")[:15]
    theta, cov = score(eng, s0, np.ones(15, dtype=int))
    assert theta[0] > 1.0
    # the regression of θ_1 on θ_0 under the prior: E[θ_1 | θ̂_0] = ρ θ̂_0
    assert theta[1] == pytest.approx(0.7 * theta[0], rel=1e-6)
    assert np.sqrt(cov[1, 1]) < 1.0


def test_d_optimal_criterion_is_the_determinant_gain(bank3, make_corr):
    eng = mcat(bank3, engine.Blueprint(se_target=None), correlations=make_corr(3, 0.5))
    state = eng.start(seed=1)
    ans = np.random.default_rng(2).integers(0, 2, len(bank3))
    for _ in range(7):
        state = eng.record(state, state.pending, int(ans[eng.pool.index(state.pending)]))
    memo = eng.work(state)
    crit = np.full(len(bank3), -np.inf)
    for k, tab in enumerate(eng.tables):
        crit[tab.idx] = eng.selector.criterion(eng.selection_context(memo, ALL, k))[0]
    crit[memo.blocked[0]] = -np.inf
    prec = np.linalg.inv(memo.cov[0])
    info = np.concatenate([irt.item_information([memo.theta[0, k]], bank3.take(
        bank3.skill_indices(s)))[0] for k, s in enumerate(eng.skill_names)])
    det0 = np.linalg.det(prec)
    gain = np.empty(len(bank3))
    for i in range(len(bank3)):
        e = np.zeros(3)
        e[eng.skill_pos[i]] = 1.0
        gain[i] = np.linalg.det(prec + info[i] * np.outer(e, e)) / det0 - 1.0
    free = np.isfinite(crit)
    np.testing.assert_allclose(crit[free], gain[free], rtol=1e-8)
    assert not free[[eng.pool.index(e.item_id) for e in state.events]].any()
    assert eng.pool.index(state.pending) == int(np.argmax(crit))


@pytest.mark.parametrize("balancer", [engine.OpenSkills(), engine.MinimumsFirst()])
def test_c_optimal_criterion_is_the_drop_in_the_composite_variance(bank3, make_corr, balancer):
    weights = {"s0": 1.0, "s1": 2.0, "s2": 0.5}
    bp = engine.Blueprint(se_target=None, selector=engine.COptimal(weights), balancer=balancer,
                          skills=(engine.SkillSpec("s0", min_items=2), engine.SkillSpec("s1"),
                                  engine.SkillSpec("s2", min_items=1)))
    eng = mcat(bank3, bp, correlations=make_corr(3, 0.5))
    assert engine.Blueprint.from_json(bp.to_json()) == bp
    state = eng.start(seed=1)
    ans = np.random.default_rng(2).integers(0, 2, len(bank3))
    for _ in range(7):
        state = eng.record(state, state.pending, int(ans[eng.pool.index(state.pending)]))
    memo = eng.work(state)
    crit = np.full(len(bank3), -np.inf)
    for k, tab in enumerate(eng.tables):
        crit[tab.idx] = eng.selector.criterion(eng.selection_context(memo, ALL, k))[0]
    crit[memo.blocked[0]] = -np.inf
    cov = memo.cov[0]
    w = np.array([1.0, 2.0, 0.5])
    info = np.concatenate([irt.item_information([memo.theta[0, k]], bank3.take(
        bank3.skill_indices(s)))[0] for k, s in enumerate(eng.skill_names)])
    drop = np.empty(len(bank3))
    for i in range(len(bank3)):  # the posterior covariance after the item, by inversion
        e = np.zeros(3)
        e[eng.skill_pos[i]] = 1.0
        after = np.linalg.inv(np.linalg.inv(cov) + info[i] * np.outer(e, e))
        drop[i] = w @ cov @ w - w @ after @ w
    free = np.isfinite(crit)
    np.testing.assert_allclose(crit[free], drop[free], rtol=1e-8)
    # every skill had its minimum within the first 7 items, so all skills competed
    assert eng.pool.index(state.pending) == int(np.argmax(crit))
    assert state.pending_audit is not None and state.pending_audit.rule == "c_optimal"


def test_c_optimal_takes_the_composite_rules_weights_and_names_bad_ones(bank3):
    rule = engine.CompositeSE(0.3, weights={"s0": 3.0, "s2": 1.0})
    eng = engine.make_engine(bank3, engine.Blueprint(
        se_target=None, selector=engine.COptimal(), stopping=(rule,),
        skills=("s0", "s1", "s2")))
    np.testing.assert_allclose(eng.selector_prepared, [0.75, 0.0, 0.25])  # scaled to sum 1
    with pytest.raises(ConfigurationError, match="unknown skill"):
        engine.make_engine(bank3, engine.Blueprint(selector=engine.COptimal({"sX": 1.0}),
                                                   skills=("s0", "s1")))
    with pytest.raises(ConfigurationError, match="every weight is 0"):
        engine.make_engine(bank3, engine.Blueprint(selector=engine.COptimal({"s0": 0.0}),
                                                   skills=("s0", "s1")))


@pytest.mark.parametrize("matrix, message", [
    ([[1.0, 0.5], [0.5, 1.0]], "3 x 3"),
    ([[1.0, 0.5, 0.2], [0.4, 1.0, 0.2], [0.2, 0.2, 1.0]], "symmetric"),
    ([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]], "positive definite"),
    ([[1.0, 1.2, 0.0], [1.2, 1.0, 0.0], [0.0, 0.0, 1.0]], "(-1, 1)"),
    ([[0.9, 0.1, 0.0], [0.1, 1.0, 0.0], [0.0, 0.0, 1.0]], "must be 1"),
])
def test_bad_correlation_matrices_are_configuration_errors(bank3, matrix, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        mcat(bank3, engine.Blueprint(), correlations=matrix)


def test_map_with_mixed_models_equals_generic_optimizer(make_corr):
    """3PL, GRM and GPCM skills (Fisher scoring still converges to the posterior mode)."""
    bank = irt.Bank.from_params([p for b in (
        irt.generate_items(20, "3pl", 1, skill="a", prefix="a"),
        irt.generate_items(20, "grm", 2, skill="b", prefix="b", n_categories=4),
        irt.generate_items(20, "gpcm", 3, skill="c", prefix="c", n_categories=3)) for p in
        b.params()])
    eng = mcat(bank, engine.Blueprint(), correlations=make_corr(3, 0.5))
    g = np.random.default_rng(8)
    # a subset without 4-category items on purpose (fewer categories than the bank's maximum)
    for items in (g.choice(60, 18, replace=False), np.r_[0:6, 45:55]):
        resp = np.array([g.integers(0, bank.n_categories[i]) for i in items])
        theta, _ = score(eng, items, resp)
        sub = bank.take(items)
        pos = eng.skill_pos[items]

        def nlp(t, sub=sub, pos=pos, resp=resp):
            p = irt.paired_category_derivatives(t[pos], sub, order=0)[0]
            d = t - eng.prior_mean
            return -(np.log(p[np.arange(len(resp)), resp]).sum()
                     - 0.5 * d @ precision(eng) @ d)

        ref = minimize(nlp, np.zeros(3), method="BFGS", options={"gtol": 1e-9})
        np.testing.assert_allclose(theta, ref.x, atol=1e-4)
