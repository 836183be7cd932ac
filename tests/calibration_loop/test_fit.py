"""Item fit (S-X², θ̂-group Q1, infit/outfit), person fit lz, reliability and information."""

from __future__ import annotations

import numpy as np
import pytest

import irt
from calibration.fit import (
    empirical_icc,
    empirical_reliability,
    information_curves,
    item_fit,
    lord_wingersky,
    marginal_reliability,
    mean_squares,
    person_fit,
    s_x2,
)
from calibration.mml import MMLCalibrator

MISFIT = (3, 11, 19)


def test_lord_wingersky_matches_enumeration() -> None:
    bank = irt.Bank.from_params([*irt.generate_items(3, "2pl", 1).params(),
                                 *irt.generate_items(2, "grm", 2, prefix="p",
                                                     n_categories=3).params()])
    theta = np.array([-1.0, 0.3, 2.0])
    probs = irt.category_probabilities(theta, bank)
    f = lord_wingersky(probs, bank.n_categories)
    brute = np.zeros_like(f)
    for pattern in np.ndindex(*bank.n_categories):
        p = np.prod([probs[:, i, k] for i, k in enumerate(pattern)], axis=0)
        brute[:, sum(pattern)] += p
    np.testing.assert_allclose(f, brute, atol=1e-14)
    np.testing.assert_allclose(f.sum(axis=1), 1.0)


def _misfit_data(seed: int, n: int = 2000) -> tuple[np.ndarray, irt.Bank]:
    rng = np.random.default_rng(seed)
    true = irt.generate_items(30, "2pl", rng)
    # misfitting items: two 3PL items with c = 0.25 whose guessing floor is visible (a = 2.5,
    # b ≥ 1) and one non-monotone item. Power is lower for flatter or easier 3PL items: see
    # the power study in benchmarks/bench_loop_fit.py.
    a, b, c = true.a.copy(), true.b.copy(), np.zeros(30)
    a[[3, 11]] = 2.5
    b[[3, 11]] = [1.0, 1.5]
    c[[3, 11]] = 0.25
    gen = irt.Bank.dichotomous(a, b, c=c)
    theta = rng.normal(size=n)
    x = irt.simulate_responses(theta, gen, rng)
    x[:, 19] = (rng.random(n) < 0.15 + 0.7 * np.exp(-(theta**2) / 0.5)).astype(int)
    return x, gen


def test_s_x2_flags_misfitting_items_under_a_2pl_calibration() -> None:
    x, _ = _misfit_data(4)
    fitted = MMLCalibrator("2pl").fit(x).items_
    res = item_fit(irt.SparseResponses.from_dense(x), fitted)
    assert set(res.method) == {"S-X2"}
    assert all(res.flag_fit[k] for k in MISFIT), res.p_value[list(MISFIT)]
    clean = [k for k in range(30) if k not in MISFIT]
    assert np.mean(res.flag_fit[clean]) <= 0.1
    assert np.all(res.df[clean] > 5)
    rows = res.to_rows()
    assert rows[MISFIT[0]][10].startswith("fit")


def test_s_x2_p_values_are_uniform_under_the_model() -> None:
    # calibrated parameters, fitting model: p-values ~ U(0, 1), the 5 % flag rate is nominal
    rng = np.random.default_rng(9)
    bank = irt.generate_items(25, "2pl", rng)
    p = []
    for _ in range(4):
        x = irt.simulate_responses(rng.normal(size=1500), bank, rng)
        fitted = MMLCalibrator("2pl", standard_errors=False).fit(x).items_
        p.append(item_fit(irt.SparseResponses.from_dense(x), fitted).p_value)
    p = np.concatenate(p)
    assert 0.01 <= np.mean(p < 0.05) <= 0.10
    assert 0.4 <= np.mean(p) <= 0.6


def test_s_x2_agrees_with_mirt() -> None:
    mirt = pytest.importorskip("mirt")
    from mirt.diagnostics.itemfit import compute_itemfit

    rng = np.random.default_rng(0)
    bank = irt.generate_items(15, "2pl", rng)
    x = irt.simulate_responses(rng.normal(size=1500), bank, rng)
    res = mirt.fit_mirt(x, "2PL", verbose=False, compute_standard_errors=False)
    a = np.asarray(res.model.discrimination).ravel()
    b = np.asarray(res.model.difficulty).ravel()
    grid = irt.normal_grid(61)
    theirs = compute_itemfit(res.model, x, ["S_X2"], quadrature_points=grid.nodes,
                             quadrature_weights=grid.weights)
    stat, df, pv = s_x2(irt.SparseResponses.from_dense(x), irt.Bank.dichotomous(a, b),
                        np.arange(15), quadrature=grid)
    np.testing.assert_allclose(stat, np.asarray(theirs["S_X2"]), rtol=1e-6)
    np.testing.assert_array_equal(df, np.asarray(theirs["df"]))
    np.testing.assert_allclose(pv, np.asarray(theirs["p_value"]), rtol=1e-5)


def test_graded_s_x2_agrees_with_mirt() -> None:
    mirt = pytest.importorskip("mirt")
    from mirt.diagnostics.itemfit import compute_itemfit

    rng = np.random.default_rng(2)
    bank = irt.generate_items(8, "grm", rng, n_categories=4)
    x = irt.simulate_responses(rng.normal(size=1500), bank, rng)
    res = mirt.fit_mirt(x, "GRM", n_categories=4, verbose=False, compute_standard_errors=False)
    a = np.asarray(res.model.parameters["discrimination"]).ravel()
    th = np.asarray(res.model.parameters["thresholds"])
    fitted = irt.Bank.from_params(irt.ItemParams(f"g{k}", "grm", a[k], thresholds=tuple(th[k]))
                                  for k in range(8))
    grid = irt.normal_grid(61)
    theirs = compute_itemfit(res.model, x, ["S_X2"], quadrature_points=grid.nodes,
                             quadrature_weights=grid.weights)
    stat, df, _ = s_x2(irt.SparseResponses.from_dense(x), fitted, np.arange(8), quadrature=grid)
    np.testing.assert_allclose(stat, np.asarray(theirs["S_X2"]), rtol=1e-8)
    np.testing.assert_array_equal(df, np.asarray(theirs["df"]))


def test_polytomous_s_x2_runs_and_accepts_the_true_model() -> None:
    rng = np.random.default_rng(2)
    bank = irt.generate_items(10, "gpcm", rng, n_categories=3)
    x = irt.simulate_responses(rng.normal(size=1500), bank, rng)
    res = item_fit(irt.SparseResponses.from_dense(x), bank)
    assert np.all(res.df > 0)
    assert np.mean(res.flag_fit) <= 0.2


def _sparse(x: np.ndarray, per_person: int, rng: np.random.Generator) -> irt.SparseResponses:
    return irt.SparseResponses.from_dense(x, _random_mask(x.shape, per_person, rng))


def test_sparse_data_use_rest_theta_groups_with_a_nominal_null() -> None:
    rng = np.random.default_rng(6)
    bank = irt.generate_items(30, "2pl", rng)
    p = []
    for _ in range(3):
        x = irt.simulate_responses(rng.normal(size=3000), bank, rng)
        data = _sparse(x, 12, rng)
        fitted = MMLCalibrator("2pl", standard_errors=False).fit(data).items_
        res = item_fit(data, fitted)
        p.append(res.p_value)
    assert set(res.method) == {"rest-theta"}
    assert "rest-theta" in res.notes()[0]
    p = np.concatenate(p)
    assert 0.01 <= np.mean(p < 0.05) <= 0.10
    assert 0.4 <= np.mean(p) <= 0.6


def test_sparse_data_find_a_non_monotone_item() -> None:
    rng = np.random.default_rng(7)
    bank = irt.generate_items(30, "2pl", rng)
    theta = rng.normal(size=4000)
    x = irt.simulate_responses(theta, bank, rng)
    # item 5 peaks at θ = 0 instead of rising: no 2PL curve fits it
    bump = 0.15 + 0.7 * np.exp(-(theta**2) / 0.5)
    x[:, 5] = (rng.random(4000) < bump).astype(int)
    data = irt.SparseResponses.from_dense(x, _random_mask(x.shape, 15, rng))
    fitted = MMLCalibrator("2pl").fit(data).items_
    res = item_fit(data, fitted)
    assert res.flag_fit[5]
    assert np.mean(np.delete(res.flag_fit, 5)) <= 0.1


def _random_mask(shape: tuple[int, int], per_person: int, rng: np.random.Generator
                 ) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for p in range(shape[0]):
        mask[p, rng.choice(shape[1], per_person, replace=False)] = True
    return mask


def test_infit_outfit_near_one_and_sensitive() -> None:
    rng = np.random.default_rng(3)
    bank = irt.Bank.dichotomous(np.ones(40), np.linspace(-2, 2, 40))
    x = irt.simulate_responses(rng.normal(size=3000), bank, rng)
    infit, outfit = mean_squares(irt.SparseResponses.from_dense(x), bank)
    # θ̂ contains the item's own response, so mean-squares sit slightly below 1 (overfit)
    assert np.all(np.abs(infit - 1) < 0.1) and np.all(np.abs(outfit - 1) < 0.15)
    # a random-guess item (no relation to θ) overfits nothing: its mean-squares exceed 1
    x[:, 20] = rng.integers(0, 2, 3000)
    infit, outfit = mean_squares(irt.SparseResponses.from_dense(x), bank)
    assert infit[20] > 1.2 and outfit[20] > 1.2


def test_lz_is_standard_for_model_data_and_low_for_aberrant_persons() -> None:
    rng = np.random.default_rng(12)
    bank = irt.generate_items(40, "2pl", rng)
    theta = rng.normal(size=2000)
    x = irt.simulate_responses(theta, bank, rng)
    easy_first = np.argsort(bank.b)
    # aberrant: the 20 hardest right, the 20 easiest wrong
    x[:50] = 0
    x[:50, easy_first[20:]] = 1
    res = person_fit(irt.SparseResponses.from_dense(x), bank, theta=theta)
    normal = res.lz[50:]
    assert abs(np.mean(normal)) < 0.15 and 0.85 < np.std(normal) < 1.15
    assert np.all(res.flag[:50])
    assert np.mean(res.flag[50:]) < 0.1
    assert len(res.to_rows()) == 2000


def test_reliability_and_information_curves() -> None:
    bank = irt.Bank.dichotomous(np.full(30, 1.5), np.linspace(-2, 2, 30))
    rho = marginal_reliability(bank)
    curves = information_curves(bank)
    assert 0.8 < rho < 0.95
    assert curves.reliability[0] == pytest.approx(rho)
    np.testing.assert_allclose(curves.se[:, 0], 1 / np.sqrt(irt.test_information(curves.theta,
                                                                                 bank)))
    # empirical EAP reliability agrees with the model-based one on complete data
    rng = np.random.default_rng(1)
    x = irt.simulate_responses(rng.normal(size=4000), bank, rng)
    est = irt.eap(x, bank)
    assert empirical_reliability(est.theta, est.se) == pytest.approx(rho, abs=0.03)
    # two skills give two curves
    two = irt.Bank.from_params([*bank.params()[:10],
                                *irt.generate_items(5, "2pl", 3, skill="sql", prefix="s").params()])
    assert information_curves(two).skills == ("default", "sql")


def test_empirical_icc_follows_the_model() -> None:
    rng = np.random.default_rng(4)
    bank = irt.generate_items(20, "2pl", rng)
    x = irt.simulate_responses(rng.normal(size=4000), bank, rng)
    icc = empirical_icc(irt.SparseResponses.from_dense(x), bank, 7)
    assert icc.n.sum() == 4000
    np.testing.assert_allclose(icc.observed, icc.expected, atol=0.06)
    assert np.all(np.diff(icc.observed) > -0.03)


def test_items_nobody_answered_do_not_break_the_complete_form() -> None:
    rng = np.random.default_rng(5)
    bank = irt.generate_items(12, "2pl", rng)
    x = irt.simulate_responses(rng.normal(size=1000), bank, rng).astype(float)
    x[:, 11] = np.nan                     # in the bank, never administered
    data = irt.SparseResponses.from_dense(x)
    data = irt.SparseResponses(data.person, data.item, data.response, 1000, 12)
    res = item_fit(data, bank)
    assert set(res.method[:11]) == {"S-X2"} and res.method[11] == "none"
    assert np.all(np.isfinite(res.p_value[:11])) and np.isnan(res.p_value[11])
    assert "unreliable: 0 < 100" in res.notes()[11]


def test_one_missing_response_keeps_s_x2_for_every_item_of_the_skill() -> None:
    rng = np.random.default_rng(8)
    bank = irt.generate_items(10, "2pl", rng)
    x = irt.simulate_responses(rng.normal(size=1500), bank, rng).astype(float)
    x[0, 3] = np.nan                      # one person skipped one item
    res = item_fit(irt.SparseResponses.from_dense(x), bank)
    assert set(res.method) == {"S-X2"}
    assert "1499 complete cases (1 incomplete left out)" in res.reason[0]
    complete = item_fit(irt.SparseResponses.from_dense(x[1:]), bank)
    np.testing.assert_allclose(res.statistic, complete.statistic)


def test_anchored_items_on_adaptive_logs_get_the_sequential_statistic() -> None:
    from calibration.simulate import simulate_adaptive_responses

    rng = np.random.default_rng(9)
    bank = irt.generate_items(60, "2pl", rng)
    data = simulate_adaptive_responses(rng.normal(size=3000), bank, 15, rng)
    res = item_fit(data, bank, estimated=np.zeros(60, dtype=bool))
    tested = np.isfinite(res.p_value)
    assert set(np.asarray(res.method)[tested]) == {"sequential"}
    assert tested.sum() >= 30
    assert np.mean(res.p_value[tested] < 0.05) <= 0.12


def test_marginal_reliability_agrees_with_the_empirical_one_on_a_hard_test() -> None:
    # hard, discriminating items: almost no information below θ = 0, where ∫ g / I used to
    # explode (the old formula gave about 0 here)
    bank = irt.Bank.dichotomous(np.full(12, 2.0), np.linspace(1.0, 2.5, 12))
    rng = np.random.default_rng(3)
    x = irt.simulate_responses(rng.normal(size=4000), bank, rng)
    est = irt.eap(x, bank)
    # 1/(I + 1/σ²) is a normal approximation to the posterior variance: 0.58 vs 0.62 here
    assert marginal_reliability(bank) == pytest.approx(empirical_reliability(est.theta, est.se),
                                                       abs=0.05)
