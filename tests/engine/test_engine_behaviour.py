"""Known behaviour of the CAT: accuracy and length against a fixed form, Sympson–Hetter
exposure, SPRT error rates, and the selection criteria against direct integration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import integrate

import engine
import irt
from engine.simulation import (
    draw_answers,
    simulate,
    simulate_fixed_form,
    summarize,
    tune_sympson_hetter,
)
from engine.strategies import SelectionContext


def test_cat_accuracy_and_length_against_fixed_form(bank_500):
    eng = engine.CatEngine(bank_500, engine.Blueprint(se_target=0.3, max_items=40))
    theta = np.random.default_rng(11).normal(size=1000)
    answers = draw_answers(eng, theta, 12)
    cat = summarize(simulate(eng, theta, answers=answers))
    assert cat.skills[0].rmse <= 0.33
    assert abs(cat.skills[0].bias) < 0.05
    # a random fixed form twice as long as the CAT's mean length is still less precise
    length = round(2 * cat.mean_length)
    fixed = summarize(simulate_fixed_form(eng, theta, length, answers=answers, rng=13))
    assert fixed.skills[0].rmse > cat.skills[0].rmse
    assert fixed.overlap_rate == pytest.approx(1.0)
    # conditional accuracy: no decile is badly off
    assert max(d.rmse for d in cat.deciles) < 0.5
    assert cat.stop_reasons[0][0] in engine.STOP_REASONS


def test_sympson_hetter_reaches_its_target():
    pool = engine.ItemPool(irt.generate_items(150, "2pl", 7))
    bp = engine.Blueprint(se_target=0.35, max_items=12)
    eng = engine.CatEngine(pool, bp)
    free = summarize(simulate(eng, np.random.default_rng(1).normal(size=2000), rng=2))
    assert free.max_exposure > 0.5  # the problem SH solves
    tuning = tune_sympson_hetter(eng, lambda g: g.normal(size=1000), r_max=0.25, rng=3)
    assert tuning.converged
    controlled = engine.CatEngine(pool, replace(bp, exposure=tuning.control))
    check = summarize(simulate(controlled, np.random.default_rng(4).normal(size=4000), rng=5))
    assert check.max_exposure <= 0.25 + 0.02
    assert check.unused_share <= free.unused_share
    # the tuned control survives a blueprint round-trip
    bp = engine.Blueprint.from_json(controlled.blueprint.to_json())
    assert bp.exposure == tuning.control


def test_exposure_cap_with_running_rates(bank_500):
    bp = engine.Blueprint(se_target=0.3, max_items=40)
    theta = np.random.default_rng(21).normal(size=1000)
    free = summarize(simulate(engine.CatEngine(bank_500, bp), theta, rng=22))
    capped = summarize(simulate(engine.CatEngine(bank_500, replace(
        bp, exposure=engine.ExposureCap(0.2))), theta, rng=22, update_rates_every=25))
    assert free.max_exposure > 0.9
    # items stop being served once their observed rate reaches the cap; the overshoot is at
    # most one group of 25 simulees (2.5 %) plus the first group, which has no rates yet
    assert capped.max_exposure <= 0.2 + 0.05
    assert capped.unused_share < free.unused_share


@pytest.mark.parametrize("method", ["sprt", "ci"])
def test_classification_error_rates(bank_500, method):
    cls = engine.Classification(cut=0.5, delta=0.3, alpha=0.05, beta=0.10, method=method,
                                level=0.90)
    eng = engine.CatEngine(bank_500, engine.Blueprint(se_target=None, max_items=60,
                                                      classification=cls))
    n = 2000
    below = simulate(eng, np.full(n, 0.5 - 0.3), rng=1)  # true: fail
    above = simulate(eng, np.full(n, 0.5 + 0.3), rng=2)  # true: pass
    false_pass = np.mean(below.decision[:, 0] == "pass")
    false_fail = np.mean(above.decision[:, 0] == "fail")
    # at θ = cut ∓ δ the error rates are near the nominal α and β (Wald's bounds are
    # approximate; both stay within 0.03 of nominal here)
    assert false_pass <= 0.05 + 0.03 and false_fail <= 0.10 + 0.03
    assert false_pass > 0.01 and false_fail > 0.02
    far = simulate(eng, np.r_[np.full(500, -1.0), np.full(500, 2.0)], rng=3)
    wrong = np.r_[far.decision[:500, 0] == "pass", far.decision[500:, 0] == "fail"]
    assert wrong.mean() < 0.01
    assert far.stop_reason.count("classified") == 1000
    assert far.test_length.mean() < below.test_length.mean()


def _ctx(tables, theta, nodes, log_post=None, n_given=1):
    lp = np.zeros((1, nodes.size)) if log_post is None else log_post[None, :]
    return SelectionContext(tables, np.array([theta]), np.array([1.0]), lp, np.array([n_given]), 20,
                            nodes)


def test_criteria_against_direct_integration(mixed_bank):
    eng = engine.CatEngine(mixed_bank, engine.Blueprint(skills=("db",)))
    tables = eng.tables[eng.skill_names.index("db")]  # 3PL + GRM items
    nodes = eng.nodes
    theta, n_given = 0.4, 4
    # Fisher information equals the IRT core's
    mfi = engine.MaxInfo().criterion(_ctx(tables, theta, nodes))[0]
    np.testing.assert_allclose(mfi, irt.item_information(theta, tables.bank)[0], rtol=1e-9)
    # KL index: ∫ Σ_k P_k(θ̂) log(P_k(θ̂)/P_k(θ)) dθ over θ̂ ± 3/√n, by adaptive quadrature
    kl = engine.KLInfo(width=3.0).criterion(_ctx(tables, theta, nodes, n_given=n_given))[0]
    d = 3.0 / np.sqrt(n_given)
    for j in (0, 30):
        one = tables.bank.take([j])
        p0 = irt.category_probabilities(theta, one)[0, 0]
        k = int(one.n_categories[0])

        def f(t, p0=p0, one=one, k=k):
            p = irt.category_probabilities(t, one)[0, 0]
            return float(np.sum(p0[:k] * np.log(p0[:k] / p[:k])))

        ref = integrate.quad(f, theta - d, theta + d)[0]
        assert kl[j] == pytest.approx(ref, rel=1e-3)
    # posterior-weighted information: Σ_q I(θ_q) p(θ_q | x) for a N(0.5, 0.6²) posterior
    lp = -0.5 * ((nodes - 0.5) / 0.6) ** 2
    mpwi = engine.PosteriorWeightedInfo().criterion(_ctx(tables, theta, nodes, lp))[0]
    w = np.exp(lp) / np.exp(lp).sum()
    np.testing.assert_allclose(mpwi, w @ irt.item_information(nodes, tables.bank), rtol=1e-9)
    # b-matching: the closest difficulty wins
    bm = engine.BMatching().criterion(_ctx(tables, theta, nodes))[0]
    assert int(np.argmax(bm)) == int(np.argmin(np.abs(tables.b - theta)))


def test_astratified_uses_low_a_first(bank_500):
    eng = engine.CatEngine(bank_500, engine.Blueprint(selector=engine.AStratified(n_strata=4),
                                                      se_target=None, max_items=20))
    state = eng.start(seed=1)
    while not state.finished:
        state = eng.record(state, state.pending, int(state.n_items % 2))
    a = np.array([bank_500.a[bank_500.index(e.item_id)] for e in state.events])
    q = np.quantile(bank_500.a, [0.25, 0.5, 0.75])
    assert np.all(a[:5] <= q[0] + 1e-12) and np.all(a[15:] >= q[2] - 1e-12)


def test_polytomous_bank_runs_every_selector(mixed_bank):
    for sel in (engine.MaxInfo(), engine.KLInfo(), engine.PosteriorWeightedInfo(),
                engine.BMatching(), engine.AStratified()):
        eng = engine.CatEngine(mixed_bank, engine.Blueprint(skills=("sec",), selector=sel,
                                                            max_items=8, se_target=None))
        res = simulate(eng, np.array([-1.0, 0.0, 1.5]), rng=0)
        models = {mixed_bank.models[i] for i in res.items.ravel() if i >= 0}
        assert "gpcm" in models
        assert res.n_items.ravel().tolist() == [8, 8, 8]
