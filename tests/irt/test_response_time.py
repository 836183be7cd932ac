"""The lognormal response-time model: recovery, a monotone EM, calibrated residuals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from irt.response_time import (
    fit_lognormal,
    loo_time_residuals,
    simulate_times,
    speed_posterior,
)


def _design(n_persons: int, n_items: int, per_person: int, rng: np.random.Generator):
    person = np.repeat(np.arange(n_persons), per_person)
    item = np.concatenate([rng.choice(n_items, per_person, replace=False)
                           for _ in range(n_persons)])
    return person, item


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(2026)
    n_p, n_i = 3000, 60
    beta = rng.normal(3.8, 0.4, n_i)
    alpha = rng.uniform(1.5, 3.0, n_i)
    tau = rng.normal(0.0, 0.35, n_p)
    person, item = _design(n_p, n_i, 20, rng)
    seconds = simulate_times(person, item, tau, beta, alpha, rng)
    fit = fit_lognormal(person, item, seconds, n_p, n_i)
    return beta, alpha, tau, person, item, seconds, fit


def test_item_and_population_parameters_are_recovered_from_sparse_data(study):
    beta, alpha, tau, *_, fit = study
    assert fit.converged
    assert np.sqrt(np.mean((fit.beta - beta) ** 2)) < 0.03
    assert np.sqrt(np.mean((fit.alpha - alpha) ** 2)) < 0.12
    assert fit.sigma_tau == pytest.approx(0.35, abs=0.02)
    assert np.corrcoef(fit.tau, tau)[0, 1] > 0.9


def test_the_posterior_sd_of_speed_matches_its_actual_error(study):
    _, _, tau, *_, fit = study
    z = (fit.tau - tau) / fit.tau_se
    assert np.std(z) == pytest.approx(1.0, abs=0.06)


def test_em_never_lowers_the_marginal_likelihood(study):
    *_, person, item, seconds, _fit = study
    lls = [fit_lognormal(person, item, seconds, 3000, 60, max_iter=k).loglik
           for k in (2, 5, 20)]
    assert lls[0] <= lls[1] + 1e-9 <= lls[2] + 2e-9


def test_leave_one_out_residuals_are_standard_normal_under_the_model(study):
    *_, person, item, seconds, fit = study
    z = loo_time_residuals(person, item, seconds, fit.beta, fit.alpha, fit.sigma_tau, 3000)
    assert abs(np.mean(z)) < 0.03 and np.std(z) == pytest.approx(1.0, abs=0.03)
    assert stats.kstest(z, "norm").statistic < 0.02


def test_speed_posterior_is_the_conjugate_normal_update():
    beta, alpha = np.array([4.0, 3.0]), np.array([2.0, 1.0])
    seconds = np.exp([3.5, 3.2])
    mean, sd = speed_posterior([0, 0], [0, 1], seconds, beta, alpha, 0.5, 1)
    precision = 1 / 0.25 + 4 + 1
    assert sd[0] == pytest.approx(precision ** -0.5)
    assert mean[0] == pytest.approx((4 * 0.5 + 1 * -0.2) / precision)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_bad_times_are_refused_with_their_row(bad):
    with pytest.raises(ValueError, match="row 1"):
        fit_lognormal([0, 0, 1, 1], [0, 1, 0, 1], [3.0, bad, 2.0, 4.0], 2, 2)


def test_items_with_too_few_times_get_no_parameters_and_no_evidence():
    rng = np.random.default_rng(1)
    person = np.array([0, 0, 1, 1, 2, 2, 3])
    item = np.array([0, 1, 0, 1, 0, 1, 2])
    seconds = rng.uniform(20, 60, person.size)
    fit = fit_lognormal(person, item, seconds, 4, 3)
    assert np.isnan(fit.beta[2]) and np.isnan(fit.alpha[2]) and fit.n_responses[2] == 1
    z = loo_time_residuals(person, item, seconds, fit.beta, fit.alpha, fit.sigma_tau, 4)
    assert np.isnan(z[-1]) and np.isfinite(z[:-1]).all()
