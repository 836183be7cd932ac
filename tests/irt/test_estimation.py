"""Ability estimation: recovery on simulated data, edge cases, and agreement between methods."""

from __future__ import annotations

import numpy as np
import pytest

import irt
from irt import Bank, ItemParams, SparseResponses

ESTIMATORS = {
    "eap": irt.eap,
    "map": irt.map_estimate,
    "mle": irt.mle,
    "wle": irt.wle,
}


@pytest.fixture(scope="module")
def informative_bank() -> Bank:
    # 60 informative 2PL items: a ~ U(1.2, 2.2), b spread over the ability range.
    rng = np.random.default_rng(2024)
    a = rng.uniform(1.2, 2.2, 60)
    b = np.linspace(-2.5, 2.5, 60)
    return Bank.dichotomous(a, b)


def test_eap_recovers_theta_with_honest_standard_errors(informative_bank: Bank) -> None:
    rng = np.random.default_rng(11)
    theta = rng.normal(size=2000)
    x = irt.simulate_responses(theta, informative_bank, rng)
    est = irt.eap(x, informative_bank)
    rmse = np.sqrt(np.mean((est.theta - theta) ** 2))
    assert rmse < 0.3
    assert abs(est.se.mean() - rmse) / rmse < 0.15
    assert np.all(est.n_responses == 60)


@pytest.mark.parametrize("method", ["map", "mle", "wle"])
def test_point_estimators_recover_theta(informative_bank: Bank, method: str) -> None:
    rng = np.random.default_rng(12)
    theta = rng.uniform(-2, 2, 1000)
    x = irt.simulate_responses(theta, informative_bank, rng)
    est = ESTIMATORS[method](x, informative_bank)
    rmse = np.sqrt(np.mean((est.theta - theta) ** 2))
    assert rmse < 0.35
    assert abs(est.se.mean() - rmse) / rmse < 0.2


def test_mle_is_a_root_of_the_score_and_map_of_the_posterior(informative_bank: Bank) -> None:
    rng = np.random.default_rng(13)
    theta = rng.uniform(-1.5, 1.5, 200)
    x = irt.simulate_responses(theta, informative_bank, rng)
    m = irt.mle(x, informative_bank)
    inside = np.abs(m.theta) < 3.99
    _, score, _ = irt.log_likelihood_derivatives(m.theta, informative_bank, x)
    np.testing.assert_allclose(score[inside], 0.0, atol=1e-6)
    p = irt.map_estimate(x, informative_bank, prior_mean=0.5, prior_sd=0.8)
    _, score, _ = irt.log_likelihood_derivatives(p.theta, informative_bank, x)
    np.testing.assert_allclose(score - (p.theta - 0.5) / 0.64, 0.0, atol=1e-6)


def test_eap_equals_numerical_posterior_mean_on_a_fine_grid() -> None:
    bank = irt.generate_items(8, "gpcm", 5, n_categories=4)
    x = np.array([[0, 1, 3, 2, 1, 0, 3, 2]])
    grid = np.linspace(-8, 8, 4001)
    post = np.exp(irt.log_likelihood_grid(grid, bank, x)[0] - 0.5 * grid**2)
    post /= post.sum()
    mean = (grid * post).sum()
    sd = np.sqrt(((grid - mean) ** 2 * post).sum())
    est = irt.eap(x, bank, n_nodes=121)
    assert est.theta[0] == pytest.approx(mean, abs=1e-4)
    assert est.se[0] == pytest.approx(sd, abs=1e-4)


def test_extreme_patterns_have_defined_estimates() -> None:
    bank = irt.generate_items(20, "2pl", 1)
    ones, zeros = np.ones((1, 20)), np.zeros((1, 20))
    for pattern, sign in ((ones, 1), (zeros, -1)):
        e = irt.eap(pattern, bank)
        assert np.isfinite(e.theta[0]) and sign * e.theta[0] > 1.0 and 0 < e.se[0] < 1
        m = irt.mle(pattern, bank)
        assert m.theta[0] == sign * irt.THETA_BOUNDS[1]
        assert np.isfinite(m.se[0]) and m.se[0] > 0
        w = irt.wle(pattern, bank)
        assert np.isfinite(w.theta[0]) and sign * w.theta[0] > 1.0
        mp = irt.map_estimate(pattern, bank)
        assert np.isfinite(mp.theta[0]) and sign * mp.theta[0] > 1.0


def test_single_item_moves_eap_in_the_direction_of_the_answer() -> None:
    bank = Bank.dichotomous([1.5], [0.0])
    right = irt.eap(np.array([[1]]), bank)
    wrong = irt.eap(np.array([[0]]), bank)
    assert right.theta[0] > 0 > wrong.theta[0]
    assert right.theta[0] == pytest.approx(-wrong.theta[0])
    assert right.se[0] < 1.0


@pytest.mark.parametrize("method", list(ESTIMATORS))
def test_person_without_responses_gets_the_prior(method: str) -> None:
    bank = irt.generate_items(5, "2pl", 2)
    x = np.array([[1, 0, 1, np.nan, 1], [np.nan] * 5])
    est = ESTIMATORS[method](x, bank)
    assert est.n_responses.tolist() == [4, 0]
    assert est.theta[1] == pytest.approx(0.0, abs=1e-9)
    assert est.se[1] == pytest.approx(1.0, abs=1e-6)


def test_eap_with_prior_per_person_matches_one_at_a_time() -> None:
    bank = irt.generate_items(10, "grm", 3)
    x = irt.simulate_responses([0.3, -1.0, 1.5], bank, 4)
    mu, sd = np.array([0.0, -0.5, 1.0]), np.array([1.0, 0.7, 1.3])
    together = irt.eap(x, bank, prior_mean=mu, prior_sd=sd, n_nodes=121)
    for p in range(3):
        alone = irt.eap(x[p : p + 1], bank, prior_mean=mu[p], prior_sd=sd[p], n_nodes=121)
        assert together.theta[p] == pytest.approx(alone.theta[0], abs=2e-3)
        assert together.se[p] == pytest.approx(alone.se[0], abs=2e-3)


def test_polytomous_and_mixed_banks_recover_theta() -> None:
    bank = Bank.from_params(
        irt.generate_items(15, "grm", 7, prefix="g").params()
        + irt.generate_items(15, "gpcm", 8, prefix="p").params()
        + irt.generate_items(15, "3pl", 9, prefix="d").params()
    )
    rng = np.random.default_rng(10)
    theta = rng.normal(size=1500)
    x = irt.simulate_responses(theta, bank, rng)
    for method in ("eap", "wle"):
        est = ESTIMATORS[method](x, bank)
        assert np.corrcoef(est.theta, theta)[0, 1] > 0.93


def test_sparse_and_dense_inputs_agree() -> None:
    bank = irt.generate_items(30, "2pl", 3)
    rng = np.random.default_rng(5)
    theta = rng.normal(size=300)
    sparse = irt.simulate_sparse_responses(theta, bank, 12, rng)
    dense = np.full((300, 30), np.nan)
    dense[sparse.person, sparse.item] = sparse.response
    for method, fn in ESTIMATORS.items():
        a, b = fn(sparse, bank), fn(dense, bank)
        np.testing.assert_allclose(a.theta, b.theta, atol=1e-10, err_msg=method)
        np.testing.assert_allclose(a.se, b.se, atol=1e-10, err_msg=method)


def test_gauss_hermite_and_grid_quadrature_integrate_normal_moments() -> None:
    for quad in (irt.gauss_hermite(21, 0.5, 2.0), irt.normal_grid(81, 0.5, 2.0)):
        assert quad.weights.sum() == pytest.approx(1.0)
        assert (quad.weights * quad.nodes).sum() == pytest.approx(0.5, abs=1e-6)
        assert (quad.weights * (quad.nodes - 0.5) ** 2).sum() == pytest.approx(4.0, rel=1e-3)


class TestBadInput:
    def test_mismatched_shapes(self) -> None:
        bank = irt.generate_items(5, "2pl", 1)
        with pytest.raises(ValueError, match="5 items"):
            irt.eap(np.zeros((3, 4)), bank)
        with pytest.raises(ValueError, match="mask shape"):
            irt.eap(np.zeros((3, 5)), bank, mask=np.ones((3, 4), bool))
        with pytest.raises(ValueError, match="one value per person"):
            irt.eap(np.zeros((3, 5)), bank, prior_mean=np.zeros(2))

    def test_nan_parameters_name_item_and_field(self) -> None:
        with pytest.raises(ValueError, match=r"item 'q7'.*'b'.*finite"):
            ItemParams("q7", "2pl", a=1.0, b=float("nan"))
        with pytest.raises(ValueError, match=r"item 'q8'.*'a'"):
            ItemParams("q8", "2pl", a=0.0, b=0.0)  # a negative slope is allowed; 0 is not
        with pytest.raises(ValueError, match=r"item 'q9'.*'c', 'd'"):
            ItemParams("q9", "4pl", a=1.0, b=0.0, c=0.5, d=0.4)
        with pytest.raises(ValueError, match=r"item 'g1'.*strictly increasing"):
            ItemParams("g1", "grm", a=1.0, thresholds=(0.5, -0.5))
        with pytest.raises(ValueError, match=r"item 'z'.*model"):
            ItemParams("z", "5pl", a=1.0)
        with pytest.raises(ValueError, match="theta contains NaN"):
            irt.item_information([0.0, np.nan], irt.generate_items(2, "2pl", 1))

    def test_responses_out_of_range_or_not_integer(self) -> None:
        bank = Bank.from_params([ItemParams("a1", "2pl", 1.0, 0.0),
                                 ItemParams("g1", "grm", 1.0, thresholds=(-1.0, 1.0))])
        with pytest.raises(ValueError, match=r"response 2 of person 0 out of range for item 'a1'"):
            irt.eap(np.array([[2, 0]]), bank)
        with pytest.raises(ValueError, match=r"item 'g1'.*categories 0..2"):
            irt.mle(np.array([[1, 3]]), bank)
        with pytest.raises(ValueError, match="not an integer"):
            irt.eap(np.array([[0.5, 1.0]]), bank)
        with pytest.raises(ValueError, match="row 1: response -1 out of range"):
            irt.eap(SparseResponses(np.array([0, 0]), np.array([0, 1]), np.array([1, -1]), 1, 2),
                    bank)
        with pytest.raises(ValueError, match="row 1: person 0 answered item 0 twice"):
            SparseResponses.validated([0, 0], [0, 0], [1, 0], 1, 2)

    def test_duplicate_item_ids(self) -> None:
        with pytest.raises(ValueError, match="duplicate item id 'x'"):
            Bank.from_params([ItemParams("x"), ItemParams("y"), ItemParams("x")])


def test_responses_to_items_with_fewer_categories_than_the_bank_maximum() -> None:
    # a person who answered only 3-category items of a bank that also holds 5-category items
    bank = Bank.from_params(
        irt.generate_items(3, "gpcm", 1, n_categories=3, prefix="p").params()
        + irt.generate_items(2, "grm", 2, n_categories=5, prefix="g").params())
    x = np.array([[2, 0, 1, np.nan, np.nan]])
    sparse = SparseResponses.from_dense(np.nan_to_num(x, nan=0).astype(int), ~np.isnan(x))
    for method, fn in ESTIMATORS.items():
        a, b = fn(sparse, bank), fn(x, bank)
        assert np.isfinite(a.theta[0]), method
        assert a.theta[0] == pytest.approx(b.theta[0], abs=1e-10), method
    assert np.isfinite(irt.log_likelihood(0.3, bank, sparse)[0])


# ---------------------------------------------------------------- WLE: known values, curvature
@pytest.mark.parametrize("b", [0.0, -1.3])
def test_wle_of_equal_rasch_items_has_its_closed_form(b: float) -> None:
    # n Rasch items at b: S + J/(2I) = r − nP + (1 − 2P)/2 = 0 ⇒ P = (r + ½)/(n + 1), and the
    # weighted likelihood's curvature is (n + 1) P Q (Warm 1989)
    n = 10
    bank = Bank.dichotomous(np.ones(n), np.full(n, b))
    x = (np.arange(n)[None, :] < np.arange(n + 1)[:, None]).astype(float)  # scores 0 … n
    est = irt.wle(x, bank, bounds=(-10.0, 10.0))
    p = (np.arange(n + 1) + 0.5) / (n + 1)
    np.testing.assert_allclose(est.theta, b + np.log(p / (1 - p)), atol=1e-8)
    np.testing.assert_allclose(est.se, 1.0 / np.sqrt((n + 1) * p * (1 - p)), rtol=1e-6)
    # the asymptotic I^{-1/2} = (n P Q)^{-1/2} is larger: it ignores the weight's curvature
    assert np.all(est.se < 1.0 / np.sqrt(n * p * (1 - p)))


def test_wle_curvature_matches_the_rasch_formula_and_finite_differences() -> None:
    rng = np.random.default_rng(7)
    b = rng.normal(size=12)
    bank = Bank.dichotomous(np.ones(12), b)
    theta = rng.uniform(-3, 3, 40)
    x = irt.simulate_responses(theta, bank, rng)
    pq = [(1 / (1 + np.exp(-(t - b)))) * (1 - 1 / (1 + np.exp(-(t - b)))) for t in theta]
    pq = np.array(pq)
    p = 1 / (1 + np.exp(-(theta[:, None] - b)))
    info, d1, d2 = pq.sum(1), (pq * (1 - 2 * p)).sum(1), (pq * (1 - 6 * pq)).sum(1)
    expected = info - 0.5 * (d2 / info - (d1 / info) ** 2)
    np.testing.assert_allclose(irt.wle_curvature(theta, bank, x), expected, rtol=1e-7)
    # 2PL/GPCM: J = I′, so the curvature is −d²/dθ² [log L + ½ log I]
    bank2 = Bank.from_params(irt.generate_items(6, "2pl", 3).params()
                             + irt.generate_items(5, "gpcm", 4, prefix="g").params())
    x2 = irt.simulate_responses(theta, bank2, rng)

    def weighted(t: np.ndarray) -> np.ndarray:
        return (irt.log_likelihood(t, bank2, x2)
                + 0.5 * np.log(irt.test_information(t, bank2).ravel()))

    h = 1e-3
    numeric = -(weighted(theta + h) - 2 * weighted(theta) + weighted(theta - h)) / h**2
    np.testing.assert_allclose(irt.wle_curvature(theta, bank2, x2), numeric, rtol=1e-4)


def test_wle_bounds_bind_only_for_extreme_patterns_beyond_them() -> None:
    n = 10
    bank = Bank.dichotomous(np.ones(n), np.full(n, 2.5))
    x = (np.arange(n)[None, :] < np.array([9, 10, 0])[:, None]).astype(float)
    est = irt.wle(x, bank)
    p9 = 9.5 / 11
    # 9 of 10: an ordinary person, WLE 2.5 + logit(9.5/11) ≈ 4.35, beyond ±4 and not clipped
    assert est.theta[0] == pytest.approx(2.5 + np.log(p9 / (1 - p9)), abs=1e-8)
    assert est.theta[0] > irt.THETA_BOUNDS[1]
    # all correct: WLE ≈ 5.54 is clipped to the bound, its SE is I(bound)^{-1/2}
    assert est.theta[1] == irt.THETA_BOUNDS[1]
    pb = 1 / (1 + np.exp(-(4.0 - 2.5)))
    assert est.se[1] == pytest.approx(1 / np.sqrt(n * pb * (1 - pb)))
    # all wrong: WLE = 2.5 + logit(0.5/11) ≈ -0.54 is inside the bounds and kept
    assert est.theta[2] == pytest.approx(2.5 + np.log(0.5 / 10.5), abs=1e-8)
    wide = irt.wle(x, bank, bounds=(-10.0, 10.0))
    assert wide.theta[1] == pytest.approx(2.5 + np.log(10.5 / 0.5), abs=1e-8)


def test_wle_is_the_root_of_the_weighted_score_for_every_ordinary_person() -> None:
    # 2PL and GPCM items (J = I′): the weighted score is S + I′/(2I), I′ by finite differences
    bank = Bank.from_params(irt.generate_items(8, "2pl", 5).params()
                            + irt.generate_items(4, "gpcm", 6, prefix="g").params())
    rng = np.random.default_rng(8)
    theta = rng.normal(scale=2.5, size=300)
    x = irt.simulate_responses(theta, bank, rng)
    est = irt.wle(x, bank)
    h = 1e-5
    _, s, _ = irt.log_likelihood_derivatives(est.theta, bank, x)
    info = irt.test_information(est.theta, bank).ravel()
    dinfo = (irt.test_information(est.theta + h, bank).ravel()
             - irt.test_information(est.theta - h, bank).ravel()) / (2 * h)
    top = bank.n_categories - 1
    ordinary = ~(np.all(x == 0, axis=1) | np.all(x == top, axis=1))
    assert ordinary.sum() > 200
    np.testing.assert_allclose((s + dinfo / (2 * info))[ordinary], 0.0, atol=1e-6)
