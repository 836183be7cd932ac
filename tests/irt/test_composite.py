"""The overall score's arithmetic: a weighted composite of skills and its standard error."""

from __future__ import annotations

import numpy as np
import pytest

from irt.composite import composite_estimate, composite_sd, normalized_weights


def test_equal_weights_of_independent_equal_errors_shrink_the_se_by_root_k():
    theta, se = composite_estimate([0.2, -0.4, 1.0, 0.0], [0.5] * 4, [1, 1, 1, 1])
    assert theta == pytest.approx(0.2)
    assert se == pytest.approx(0.5 / 2)


def test_se_is_the_sd_of_the_weighted_sum_under_the_covariance():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 0.1 * np.eye(3)
    w = np.array([0.5, 0.3, 0.2])
    draws = rng.multivariate_normal(np.zeros(3), cov, size=400_000)
    _, se = composite_estimate([0, 0, 0], cov, w)
    assert se == pytest.approx(float(np.std(draws @ w)), rel=0.01)


def test_population_sd_of_a_composite_of_correlated_skills():
    r = np.array([[1.0, 0.6], [0.6, 1.0]])
    # Var(0.5 x + 0.5 y) = 0.25 + 0.25 + 2 · 0.25 · 0.6 = 0.8
    assert composite_sd(r, [1, 1]) == pytest.approx(np.sqrt(0.8))
    assert composite_sd(np.eye(2), [1, 1], [2.0, 2.0]) == pytest.approx(np.sqrt(2.0))


@pytest.mark.parametrize("bad", [[], [0, 0], [1, -1], [np.nan, 1]])
def test_weights_must_be_usable(bad):
    with pytest.raises(ValueError, match="weights"):
        normalized_weights(bad)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        composite_estimate([0, 1], np.eye(3), [1, 1])


def test_the_deshrunk_interval_covers_every_ability_in_the_normal_model():
    """Normal prior N(0, τ²), normal likelihood: the interval covers 90 % at every θ, where the
    posterior interval does not (analytic model, simulated)."""
    from irt.composite import deshrunk_interval

    rng = np.random.default_rng(3)
    tau, sigma, z = 0.35, 0.5, 1.6448536
    lam = sigma**2 / (sigma**2 + tau**2)
    post_sd = np.sqrt(lam * tau**2)
    for theta in (-0.8, 0.0, 0.6):
        x = theta + sigma * rng.standard_normal(40_000)
        post_mean = (1 - lam) * x
        bounds = np.array([deshrunk_interval(m, post_sd, 0.0, tau, z)[2:] for m in post_mean])
        cover = np.mean((bounds[:, 0] <= theta) & (theta <= bounds[:, 1]))
        assert cover == pytest.approx(0.90, abs=0.01)
        posterior_cover = np.mean(np.abs(post_mean - theta) <= z * post_sd)
        if abs(theta) > 0.5:
            assert posterior_cover < 0.8


def test_deshrunk_intervals_invert_the_normal_posterior_element_by_element():
    """From a normal prior N(μ, τ²) and an unshrunk estimate x of SD σ, the posterior mean and
    SD are θ̂ = λμ + (1 − λ)x and √(λτ²) with λ = σ²/(σ² + τ²); the intervals recover x ± zσ
    from (θ̂, SD), for every element, and are unbounded where nothing was learned."""
    from irt.composite import deshrunk_intervals

    rng = np.random.default_rng(5)
    mu, tau, z = 0.2, 1.3, 1.645
    x_true, sigma_true = rng.normal(size=200), rng.uniform(0.1, 2.0, size=200)
    lam = sigma_true**2 / (sigma_true**2 + tau**2)
    post_mean, post_sd = lam * mu + (1 - lam) * x_true, np.sqrt(lam * tau**2)
    x, sigma, lo, hi = deshrunk_intervals(post_mean, post_sd, mu, tau, z)
    np.testing.assert_allclose(x, x_true, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sigma, sigma_true, rtol=1e-10)
    np.testing.assert_allclose((lo, hi), (x_true - z * sigma_true, x_true + z * sigma_true),
                               rtol=1e-10, atol=1e-10)
    x, sigma, lo, hi = deshrunk_intervals([0.5, 0.5, 0.5], [tau, 2 * tau, np.nan], mu, tau, z)
    assert np.isinf(sigma).all() and np.isneginf(lo).all() and np.isposinf(hi).all()
    np.testing.assert_array_equal(x, 0.5)
