"""Snijders' lz*: standard normal under the model with an estimated θ, where lz is not."""

from __future__ import annotations

import numpy as np
import pytest

from irt import Bank, ItemParams, wle
from irt.person_fit import lz_star
from irt.simulate import simulate_responses


@pytest.fixture(scope="module")
def fixed_form():
    rng = np.random.default_rng(11)
    n_items, n_persons = 40, 4000
    bank = Bank.from_params(ItemParams(f"i{k}", "2pl", a=float(a), b=float(b))
                            for k, (a, b) in enumerate(zip(rng.uniform(0.8, 2.0, n_items),
                                                           rng.normal(0, 1, n_items),
                                                           strict=True)))
    theta = rng.normal(size=n_persons)
    x = simulate_responses(theta, bank, rng)
    person, item = np.nonzero(np.ones_like(x, dtype=bool))
    est = wle(x, bank)
    return bank, x, person, item, est.theta


def test_lz_star_is_standard_normal_with_an_estimated_theta(fixed_form):
    bank, x, person, item, theta = fixed_form
    values = lz_star(person, item, x[person, item], theta, bank, estimator="wle")
    ok = np.isfinite(values)
    assert ok.mean() > 0.99
    # the variance is corrected to 1; a small positive mean remains at 40 items (0.10 here,
    # 0.07 at 100: the O(n^-1/2) skew of the asymptotic approximation), which is why decisions
    # use a simulated null distribution.
    assert abs(np.mean(values[ok])) < 0.15
    assert np.std(values[ok]) == pytest.approx(1.0, abs=0.05)


def test_lz_without_the_correction_has_a_variance_below_one(fixed_form):
    """The known defect lz* corrects (Snijders 2001): with θ̂, lz's variance is below 1."""
    bank, x, person, item, theta = fixed_form
    # lz is lz* with the correction switched off: ML estimator, c_n forced to 0 by a 'map'
    # with an infinitely flat prior is not available, so compute lz directly.
    from irt.models import probability

    p = probability(theta, bank)[np.arange(theta.size)[:, None], np.arange(len(bank))]
    w = np.log(p / (1 - p))
    lz = ((x - p) * w).sum(1) / np.sqrt((p * (1 - p) * w * w).sum(1))
    assert np.std(lz) < 0.93
    star = lz_star(person, item, x[person, item], theta, bank, estimator="wle")
    assert np.std(star[np.isfinite(star)]) > np.std(lz) + 0.05


def test_a_reversed_pattern_is_flagged(fixed_form):
    bank, *_ = fixed_form
    order = np.argsort(bank.b)
    x = np.zeros(len(bank), dtype=int)
    x[order[len(bank) // 2:]] = 1          # hardest half right, easiest half wrong
    est = wle(x[None, :], bank)
    value = lz_star(np.zeros(len(bank), int), np.arange(len(bank)), x, est.theta, bank)
    assert value[0] < -4


def test_only_dichotomous_items_and_known_estimators():
    bank = Bank.from_params([ItemParams("i", "2pl", a=1.0, b=0.0)])
    with pytest.raises(ValueError, match="estimator"):
        lz_star([0], [0], [1], [0.0], bank, estimator="eap")
