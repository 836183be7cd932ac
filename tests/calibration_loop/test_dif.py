"""DIF: MH identities on one table, recovery of simulated uniform DIF (dense and CAT-sparse),
ordinal logistic regression identities, group handling and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import irt
from calibration.dif import dif, ets_class, logistic_dif, mantel_haenszel, ordinal_logit_loglik

DIF_ITEMS = (2, 9, 17)
N_PER_GROUP = 2000


def _two_banks(rng: np.random.Generator, n_items: int = 30) -> tuple[irt.Bank, irt.Bank]:
    bank = irt.generate_items(n_items, "2pl", rng)
    a, b = bank.a.copy(), bank.b.copy()
    a[list(DIF_ITEMS)] = 1.0          # 0.5 logits in b is then 0.5 in log-odds (Δ_MH ≈ −1.18)
    b[list(DIF_ITEMS)] = [0.6, -0.3, 0.1]
    b_focal = b.copy()
    b_focal[list(DIF_ITEMS)] += 0.5
    return irt.Bank.dichotomous(a, b), irt.Bank.dichotomous(a, b_focal)


def test_single_table_identities() -> None:
    # A, B (reference right/wrong), C, D (focal right/wrong)
    A, B, C, D = 60, 40, 45, 55
    y = np.r_[np.ones(A), np.zeros(B), np.ones(C), np.zeros(D)]
    f = np.r_[np.zeros(A + B, bool), np.ones(C + D, bool)]
    res = mantel_haenszel(y, f, np.zeros(y.size, int))
    assert res.alpha == pytest.approx(A * D / (B * C))
    # Robins–Breslow–Greenland reduces to Woolf's variance for one table
    assert res.delta_se == pytest.approx(2.35 * np.sqrt(1 / A + 1 / B + 1 / C + 1 / D))
    n, m1 = A + B + C + D, A + C
    var = (A + B) * (C + D) * m1 * (n - m1) / (n * n * (n - 1))
    assert res.chi2 == pytest.approx((abs(A - (A + B) * m1 / n) - 0.5) ** 2 / var)
    assert res.delta < 0  # the item favours the reference group


def test_ets_rules() -> None:
    assert ets_class(-0.9, 0.1, 1e-9) == "A"
    assert ets_class(-1.2, 0.1, 0.2) == "A"
    assert ets_class(-1.2, 0.1, 1e-6) == "B"
    assert ets_class(-1.6, 0.5, 1e-6) == "B"   # not significantly beyond 1
    assert ets_class(1.8, 0.2, 1e-9) == "C"


def test_ordinal_logit_matches_closed_forms() -> None:
    rng = np.random.default_rng(0)
    g = (rng.random(500) < 0.4).astype(float)
    y = (rng.random(500) < np.where(g == 1, 0.3, 0.6)).astype(np.int64)
    # saturated in g: the ML fit reproduces each group's proportion
    expected = 0.0
    for v in (0, 1):
        p = y[g == v].mean()
        k = (g == v).sum()
        expected += k * (p * np.log(p) + (1 - p) * np.log(1 - p))
    assert ordinal_logit_loglik(g[:, None], y, 2) == pytest.approx(expected, abs=1e-5)
    # intercept-only ordinal model reproduces the marginal category proportions
    z = rng.integers(0, 4, 400)
    props = np.bincount(z) / z.size
    assert ordinal_logit_loglik(np.zeros((400, 0)), z, 4) == pytest.approx(
        float(np.sum(np.bincount(z) * np.log(props))), abs=1e-5)


def _simulate(rng, ref, foc, sparse_items: int | None = None) -> irt.SparseResponses:
    th_r = rng.normal(0.0, 1.0, N_PER_GROUP)
    th_f = rng.normal(-0.5, 1.0, N_PER_GROUP)   # impact: the focal group is less able
    if sparse_items is None:
        x = np.vstack([irt.simulate_responses(th_r, ref, rng),
                       irt.simulate_responses(th_f, foc, rng)])
        return irt.SparseResponses.from_dense(x)
    r = irt.simulate_sparse_responses(th_r, ref, sparse_items, rng)
    f = irt.simulate_sparse_responses(th_f, foc, sparse_items, rng)
    return irt.SparseResponses(np.r_[r.person, f.person + N_PER_GROUP], np.r_[r.item, f.item],
                               np.r_[r.response, f.response], 2 * N_PER_GROUP, len(ref))


@pytest.mark.parametrize("sparse_items", [None, 15])
def test_uniform_dif_of_half_a_logit_is_flagged(sparse_items: int | None) -> None:
    rng = np.random.default_rng(3)
    ref, foc = _two_banks(rng)
    data = _simulate(rng, ref, foc, sparse_items)
    group = np.array(["r"] * N_PER_GROUP + ["f"] * N_PER_GROUP)
    res = dif(data, ref, group, reference="r", focal="f")
    assert res.matching[0] == ("score" if sparse_items is None else "theta")
    flagged = [res.ets_class[k] in ("B", "C") for k in DIF_ITEMS]
    if sparse_items is None:
        assert all(flagged), res.mh_delta[list(DIF_ITEMS)]
    else:
        # θ̂ matching on 15 of 30 items attenuates Δ (measurement error and shrinkage of the
        # matching variable): still clearly negative, most DIF items flagged
        assert sum(flagged) >= 2, res.mh_delta[list(DIF_ITEMS)]
    for k in DIF_ITEMS:
        assert res.mh_delta[k] < -0.7
        assert res.lr_p[k] < 0.01
    clean = [k for k in range(len(ref)) if k not in DIF_ITEMS]
    assert np.mean([res.ets_class[k] == "A" for k in clean]) >= 0.9
    summary = res.by_skill()
    assert summary[0][:2] == ("default", 30) and sum(summary[0][2:5]) == 30
    # two-stage matching: the flagged items left the matching variable, which moves their Δ
    # away from 0 (contamination removed)
    assert {res.item_ids[k] for k in DIF_ITEMS if flagged[DIF_ITEMS.index(k)]} \
        <= set(res.purified)
    plain = dif(data, ref, group, reference="r", focal="f", purify=False)
    assert plain.purified == ()
    assert np.mean(res.mh_delta[list(DIF_ITEMS)]) < np.mean(plain.mh_delta[list(DIF_ITEMS)])


def test_polytomous_items_get_the_ordinal_lr_test() -> None:
    rng = np.random.default_rng(8)
    bank = irt.generate_items(12, "grm", rng, n_categories=4)
    items = bank.params()
    studied = irt.ItemParams(items[0].item_id, "grm", 1.2, thresholds=(-0.8, 0.0, 0.8))
    shifted = irt.ItemParams(items[0].item_id, "grm", 1.2, thresholds=(-0.3, 0.5, 1.3))
    bank = irt.Bank.from_params([studied, *items[1:]])
    foc = irt.Bank.from_params([shifted, *items[1:]])
    data = _simulate(rng, bank, foc)
    group = np.array(["r"] * N_PER_GROUP + ["f"] * N_PER_GROUP)
    res = dif(data, bank, group, reference="r", focal="f")
    assert np.isnan(res.mh_delta).all() and res.ets_class[0] == ""
    assert res.lr_p[0] < 1e-6 and res.lr_uniform[0] > 30
    assert np.mean(res.lr_p[1:] < 0.01) <= 0.2


def test_binary_newton_fit_equals_a_generic_optimizer() -> None:
    from scipy import optimize

    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=800), rng.integers(0, 2, 800)])
    X = np.column_stack([X, X[:, 0] * X[:, 1]])
    y = (rng.random(800) < 1 / (1 + np.exp(-(0.3 + X @ [1.0, -0.5, 0.4])))).astype(np.int64)
    D = np.column_stack([np.ones(800), X])

    def nll(b):
        z = D @ b
        return float(np.sum(np.logaddexp(0, z) - y * z))

    ref = optimize.minimize(nll, np.zeros(4), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    assert ordinal_logit_loglik(X, y, 2) == pytest.approx(-ref.fun, abs=1e-6)


def test_nonuniform_dif_shows_in_the_interaction_term() -> None:
    rng = np.random.default_rng(2)
    m = rng.normal(size=4000)
    g = np.r_[np.zeros(2000), np.ones(2000)]
    slope = np.where(g == 1, 0.4, 1.6)
    y = (rng.random(4000) < 1 / (1 + np.exp(-slope * m))).astype(int)
    res = logistic_dif(y, g, m)
    assert res.nonuniform > 50 and res.uniform < 10


def test_groups_and_bad_input() -> None:
    rng = np.random.default_rng(1)
    bank = irt.generate_items(6, "2pl", rng)
    data = irt.SparseResponses.from_dense(irt.simulate_responses(rng.normal(size=300), bank,
                                                                 rng))
    two = np.array(["x"] * 200 + ["y"] * 100)
    res = dif(data, bank, two, min_group=150)
    assert (res.reference, res.focal) == ("x", "y")     # larger group is the reference
    assert all("unreliable" in n for n in res.notes())  # 100 focal responses < 150
    assert not any(dif(data, bank, two, min_group=100).notes())
    three = np.array(["x"] * 100 + ["y"] * 100 + ["z"] * 100)
    with pytest.raises(ValueError, match="3 values"):
        dif(data, bank, three)
    with pytest.raises(ValueError, match="focal group 'w' does not occur"):
        dif(data, bank, three, reference="x", focal="w")
    with pytest.raises(ValueError, match="one label per person"):
        dif(data, bank, two[:10])
    res3 = dif(data, bank, three, reference="x", focal="z")
    assert res3.n_reference[0] == 100 and res3.n_focal[0] == 100
