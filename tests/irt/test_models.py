"""Identities every item model must satisfy: one row per model, one battery of checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

import irt
from irt import Bank, ItemParams

MODEL_ROWS = [
    ItemParams("m1pl", "1pl", a=1.3, b=0.4),
    ItemParams("m2pl", "2pl", a=1.7, b=-0.6),
    ItemParams("m3pl", "3pl", a=1.2, b=0.3, c=0.2),
    ItemParams("m4pl", "4pl", a=0.9, b=-0.2, c=0.15, d=0.9),
    ItemParams("mgrm", "grm", a=1.4, thresholds=(-1.2, 0.1, 1.3)),
    ItemParams("mgpcm", "gpcm", a=0.8, thresholds=(-0.5, 0.9, 0.2, 1.5)),
]
IDS = [it.model for it in MODEL_ROWS]
THETA = np.linspace(-5, 5, 201)

theta_values = st.floats(-6, 6, allow_nan=False)
a_values = st.floats(0.2, 3.0)
b_values = st.floats(-3, 3)


@pytest.fixture(params=MODEL_ROWS, ids=IDS)
def item(request) -> Bank:
    return Bank.from_params([request.param])


def test_probabilities_in_unit_interval_and_sum_to_one(item: Bank) -> None:
    p = irt.category_probabilities(THETA, item)
    k = item.n_categories[0]
    assert p.shape == (THETA.size, 1, k)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)


def test_expected_score_increases_with_theta(item: Bank) -> None:
    e = irt.expected_score(THETA, item)[:, 0]
    assert np.all(np.diff(e) > 0)


def test_information_nonnegative_and_equals_sum_of_squared_slopes(item: Bank) -> None:
    p, p1 = irt.category_derivatives(THETA, item, order=1)
    info = irt.item_information(THETA, item)[:, 0]
    assert np.all(info >= 0)
    np.testing.assert_allclose(info, (p1**2 / p).sum(axis=-1)[:, 0], rtol=1e-10)


def test_first_and_second_derivatives_match_finite_differences(item: Bank) -> None:
    h = 1e-5
    _p, p1, p2 = irt.category_derivatives(THETA, item, order=2)
    up = irt.category_probabilities(THETA + h, item)
    down = irt.category_probabilities(THETA - h, item)
    np.testing.assert_allclose(p1, (up - down) / (2 * h), atol=1e-7)
    d_up = irt.category_derivatives(THETA + h, item, order=1)[1]
    d_down = irt.category_derivatives(THETA - h, item, order=1)[1]
    np.testing.assert_allclose(p2, (d_up - d_down) / (2 * h), atol=1e-6)


def test_information_is_fisher_information_of_the_score(item: Bank) -> None:
    # I(θ) = E[(d log P_X/dθ)²] = −E[d² log P_X/dθ²]  (both forms of Fisher information)
    p, p1, p2 = irt.category_derivatives(THETA, item, order=2)
    k = item.n_categories[0]
    p, p1, p2 = p[:, 0, :k], p1[:, 0, :k], p2[:, 0, :k]
    neg_hessian = -(p * (p2 / p - (p1 / p) ** 2)).sum(axis=-1)
    np.testing.assert_allclose(irt.item_information(THETA, item)[:, 0], neg_hessian, atol=1e-9)


def test_log_likelihood_gradient_matches_finite_differences(item: Bank) -> None:
    rng = np.random.default_rng(3)
    theta = rng.normal(size=40)
    x = irt.simulate_responses(theta, item, rng)
    ll, d1, d2 = irt.log_likelihood_derivatives(theta, item, x)
    h = 1e-5
    ll_up = irt.log_likelihood(theta + h, item, x)
    ll_down = irt.log_likelihood(theta - h, item, x)
    np.testing.assert_allclose(d1, (ll_up - ll_down) / (2 * h), atol=1e-6)
    np.testing.assert_allclose(d2, (ll_up - 2 * ll + ll_down) / h**2, atol=1e-3)


def test_paired_evaluation_equals_grid_evaluation() -> None:
    bank = Bank.from_params(MODEL_ROWS)
    theta = np.array([-1.0, 0.5, 2.0])
    grid = irt.category_derivatives(theta, bank)
    rows = np.array([0, 4, 5, 2, 3, 1, 4])
    t = np.array([0, 1, 2, 0, 2, 1, 0])
    paired = irt.paired_category_derivatives(theta[t], bank.rows(rows))
    for g, p in zip(grid, paired, strict=True):
        np.testing.assert_allclose(p, g[t, rows], atol=1e-14)


@settings(max_examples=200, deadline=None)
@given(a=a_values, b=b_values, c=st.floats(0, 0.4), gap=st.floats(0.05, 0.6), t=theta_values)
def test_dichotomous_probability_bounded_by_asymptotes(a, b, c, gap, t) -> None:
    d = min(1.0, c + gap + 0.3)
    bank = Bank.dichotomous([a], [b], [c], [d])
    p = irt.probability(t, bank)[0, 0]
    assert c <= p <= d


@settings(max_examples=200, deadline=None)
@given(a=a_values, b=b_values, c=st.floats(0, 0.4), d=st.floats(0.8, 1.0))
def test_probability_at_b_is_midpoint_of_asymptotes(a, b, c, d) -> None:
    bank = Bank.dichotomous([a], [b], [c], [d])
    assert irt.probability(b, bank)[0, 0] == pytest.approx((c + d) / 2, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(a=a_values, b=b_values, t1=theta_values, t2=theta_values)
def test_2pl_information_equals_a2_p_q(a, b, t1, t2) -> None:
    bank = Bank.dichotomous([a], [b])
    t = np.array([t1, t2])
    p, q = expit(a * (t - b)), expit(-a * (t - b))  # Q without the cancellation of 1 − P
    np.testing.assert_allclose(irt.item_information(t, bank)[:, 0], a * a * p * q,
                               rtol=1e-9, atol=1e-300)


@settings(max_examples=100, deadline=None)
@given(a=a_values, b=b_values, c=st.floats(0, 0.35), t=theta_values)
def test_3pl_information_matches_lord_formula(a, b, c, t) -> None:
    # Lord (1980) eq. 5-6 with D = 1: I = a² (Q/P) ((P − c)/(1 − c))²
    bank = Bank.dichotomous([a], [b], [c])
    p = irt.probability(t, bank)[0, 0]
    expected = a * a * (1 - p) / p * ((p - c) / (1 - c)) ** 2
    # absolute slack for information ~1e-17 far from b, where (P − c) cancels catastrophically
    assert irt.item_information(t, bank)[0, 0] == pytest.approx(expected, rel=1e-8, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(a=a_values, b=b_values, t=st.lists(theta_values, min_size=1, max_size=5))
def test_1pl_2pl_3pl_equal_4pl_with_fixed_parameters(a, b, t) -> None:
    theta = np.array(t)
    four = Bank.from_params([ItemParams("x", "4pl", a, b, 0.0, 1.0)])
    for model in ("1pl", "2pl", "3pl"):
        other = Bank.from_params([ItemParams("x", model, a, b)])
        for q, r in zip(irt.category_derivatives(theta, other),
                        irt.category_derivatives(theta, four), strict=True):
            np.testing.assert_allclose(q, r, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(a=a_values, b=b_values, t=st.lists(theta_values, min_size=1, max_size=5))
def test_two_category_grm_and_gpcm_equal_2pl(a, b, t) -> None:
    theta = np.array(t)
    two = Bank.dichotomous([a], [b])
    for model in ("grm", "gpcm"):
        poly = Bank.from_params([ItemParams("x", model, a, thresholds=(b,))])
        for q, r in zip(irt.category_derivatives(theta, poly),
                        irt.category_derivatives(theta, two), strict=True):
            np.testing.assert_allclose(q, r, atol=1e-12)
        np.testing.assert_allclose(irt.item_information(theta, poly),
                                   irt.item_information(theta, two), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), t=theta_values)
def test_test_information_never_falls_as_items_are_added(seed, n, t) -> None:
    bank = Bank.from_params(
        irt.generate_items(n, "3pl", seed, prefix="d").params()
        + irt.generate_items(n, "grm", seed + 1, prefix="g").params()
    )
    info = irt.item_information(t, bank)[0]
    assert np.all(np.diff(np.cumsum(info)) >= 0)
    assert irt.test_information(t, bank)[0] == pytest.approx(info.sum())


def test_mixed_bank_matches_items_evaluated_alone() -> None:
    bank = Bank.from_params(MODEL_ROWS)
    p = irt.category_probabilities(THETA, bank)
    info = irt.item_information(THETA, bank)
    for j, it in enumerate(MODEL_ROWS):
        alone = Bank.from_params([it])
        k = it.n_categories
        np.testing.assert_allclose(p[:, j, :k], irt.category_probabilities(THETA, alone)[:, 0])
        assert np.all(p[:, j, k:] == 0)
        np.testing.assert_allclose(info[:, j], irt.item_information(THETA, alone)[:, 0])


def test_extreme_theta_stays_finite() -> None:
    bank = Bank.from_params(MODEL_ROWS)
    t = np.array([-1e3, 1e3])
    for arr in irt.category_derivatives(t, bank):
        assert np.all(np.isfinite(arr))
    assert np.all(np.isfinite(irt.item_information(t, bank)))


def test_pcm_and_rsm_items_are_gpcm_items_with_their_slope() -> None:
    """The engine evaluates the Rasch family with the partial-credit formula (Masters 1982:
    P(X = k) ∝ exp(Σ_{v≤k} a(θ − b_v))); a negative slope mirrors the curves."""
    theta = np.linspace(-3, 3, 13)
    th = (-1.0, 0.3, 1.1)
    as_gpcm = Bank.from_params([ItemParams("g", "gpcm", 1.0, thresholds=th)])
    for model in ("pcm", "rsm"):
        bank = Bank.from_params([ItemParams("x", model, 1.0, thresholds=th)])
        np.testing.assert_allclose(irt.category_probabilities(theta, bank),
                                   irt.category_probabilities(theta, as_gpcm), atol=1e-15)
        np.testing.assert_allclose(irt.item_information(theta, bank),
                                   irt.item_information(theta, as_gpcm), atol=1e-15)
    z = np.cumsum(np.stack([np.zeros_like(theta)] + [theta - b for b in th]), axis=0).T
    ref = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    bank = Bank.from_params([ItemParams("x", "pcm", 1.0, thresholds=th)])
    np.testing.assert_allclose(irt.category_probabilities(theta, bank)[:, 0, :], ref, atol=1e-12)
    rasch = Bank.from_params([ItemParams("r", "rasch", 1.0, 0.5)])
    np.testing.assert_allclose(irt.probability(theta, rasch)[:, 0],
                               1 / (1 + np.exp(-(theta - 0.5))), atol=1e-15)
    neg = Bank.from_params([ItemParams("n", "2pl", -1.3, 0.5)])
    pos = Bank.from_params([ItemParams("p", "2pl", 1.3, 0.5)])
    np.testing.assert_allclose(irt.probability(theta, neg), 1 - irt.probability(theta, pos),
                               atol=1e-12)
    np.testing.assert_allclose(irt.item_information(theta, neg),
                               irt.item_information(theta, pos), atol=1e-12)
