"""Standard errors of the MML calibration: Oakes' observed information against the numerical
Hessian of the marginal likelihood and against mirt, and the XPD paths against each other."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import irt
from calibration import MMLCalibrator
from calibration import mml as M
from irt import Bank, normal_grid
from irt.io import read_responses_csv

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("model", ["2pl", "1pl"])
def test_oakes_equals_the_numerical_hessian_of_the_marginal_likelihood(model) -> None:
    log = read_responses_csv(DATA / "responses_long.csv")  # LSAT6, 5 items × 1,000
    fit = MMLCalibrator(model, tol=1e-9, max_iter=5000, se_method="oakes").fit(log)
    assert fit.se_.method == "Oakes observed information"
    x = log.for_bank(fit.items_)
    quad = normal_grid(41, 0.0, 1.0, 6.0)
    n_a = 5 if model == "2pl" else 1  # the 1PL has one common a

    def loglik(v: np.ndarray) -> float:
        a = v[:5] if n_a == 5 else np.full(5, v[0])
        bank = Bank.dichotomous(a, v[n_a:], item_ids=fit.items_.item_ids)
        ll = irt.log_likelihood_grid(quad.nodes, bank, x) + quad.log_weights
        top = ll.max(axis=1, keepdims=True)
        return float(np.sum(top[:, 0] + np.log(np.exp(ll - top).sum(axis=1))))

    v0 = np.concatenate([fit.items_.a[:n_a], fit.items_.b])
    k = v0.size
    h = 1e-4
    hess = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hess[i, j] = hess[j, i] = (
                loglik(v0 + e_i + e_j) - loglik(v0 + e_i - e_j)
                - loglik(v0 - e_i + e_j) + loglik(v0 - e_i - e_j)) / (4 * h * h)
    se = np.sqrt(np.diag(np.linalg.inv(-hess)))
    np.testing.assert_allclose(fit.se_.a[:n_a], se[:n_a], rtol=2e-4)
    np.testing.assert_allclose(fit.se_.b, se[n_a:], rtol=2e-4)
    xpd = MMLCalibrator(model, tol=1e-9, max_iter=5000, se_method="xpd").fit(log)
    assert not np.allclose(xpd.se_.b, fit.se_.b, rtol=1e-3)  # a different estimator


def test_oakes_matches_mirt_default_standard_errors_on_science() -> None:
    log = read_responses_csv(DATA / "science4_responses_long.csv")
    with open(DATA / "science4_mirt_grm.csv", newline="") as f:
        ref = list(csv.DictReader(f))
    fit = MMLCalibrator("grm", n_nodes=121, half_width=8.0, tol=1e-7, max_iter=5000,
                        se_method="oakes").fit(log)
    ids = list(fit.items_.item_ids)
    for row in ref:
        i = ids.index(row["item_id"])
        if row["param"] == "a":
            got = fit.se_.a[i]
        else:
            got = fit.se_.thresholds[i, int(row["category"]) - 1]
        assert got == pytest.approx(float(row["se"]), rel=1e-3), row


def test_auto_takes_oakes_when_cheap_and_xpd_on_large_data() -> None:
    rng = np.random.default_rng(4)
    bank = irt.generate_items(10, "2pl", rng)
    small = irt.simulate_responses(rng.normal(size=300), bank, rng)
    assert MMLCalibrator("2pl").fit(small).se_.method == "Oakes observed information"
    large = irt.simulate_responses(rng.normal(size=M.OAKES_AUTO_MAX_PERSONS + 1), bank, rng)
    assert MMLCalibrator("2pl").fit(large).se_.method == "cross-product (XPD) information"
    with pytest.raises(ValueError, match="se_method"):
        MMLCalibrator("2pl", se_method="louis").fit(small)


@pytest.mark.parametrize("model", ["2pl", "1pl", "grm"])
def test_sparse_and_dense_xpd_agree(model) -> None:
    rng = np.random.default_rng(5)
    bank = irt.generate_items(8, model, rng)
    x = irt.simulate_responses(rng.normal(size=700), bank, rng).astype(float)
    x[rng.random(x.shape) < 0.3] = np.nan
    kw = {"se_method": "xpd", "tol": 1e-8}
    a = MMLCalibrator(model, dense=True, **kw).fit(x) if model != "grm" else None
    b = MMLCalibrator(model, dense=False, **kw).fit(x)
    if a is not None:
        np.testing.assert_allclose(a.se_.a, b.se_.a, rtol=1e-6)
        np.testing.assert_allclose(a.se_.b, b.se_.b, rtol=1e-6)
    assert np.all(np.isfinite(b.se_.a[~np.isnan(b.se_.a)]))


@pytest.mark.parametrize("model", ["2pl", "1pl", "gpcm"])
def test_item_blocks_are_the_blocks_of_the_full_cross_product(model) -> None:
    rng = np.random.default_rng(6)
    bank = irt.generate_items(7, model, rng)
    x = irt.simulate_responses(rng.normal(size=500), bank, rng).astype(float)
    x[rng.random(x.shape) < 0.25] = np.nan
    captured = {}
    original = MMLCalibrator._covariance

    def capture(self, sk, post, nodes, priors, design):
        captured.update(sk=sk, post=post, nodes=nodes, design=design)
        return original(self, sk, post, nodes, priors, design)

    MMLCalibrator._covariance = capture
    try:
        MMLCalibrator(model, dense=False, se_method="xpd").fit(x)
    finally:
        MMLCalibrator._covariance = original
    sk, post, nodes = captured["sk"], captured["post"], captured["nodes"]
    index, n_par = M._parameter_index(sk)
    scores = M._response_scores(sk, post, nodes, index)
    n_p = sk.person_global.size
    full = M._xpd_full(scores, index, n_p, n_par, as_dense=True)
    np.testing.assert_allclose(M._xpd_full(scores, index, n_p, n_par, as_dense=False), full,
                               rtol=1e-10, atol=1e-10)
    for sc, idx, g in zip(scores, index, sk.groups, strict=True):
        blocks = M._xpd_item_blocks(sk, g, idx, sc)
        for row in range(idx.shape[0]):
            sel = np.flatnonzero(idx[row] >= 0)
            gi = idx[row, sel]
            np.testing.assert_allclose(blocks[row][np.ix_(sel, sel)], full[np.ix_(gi, gi)],
                                       rtol=1e-10, atol=1e-10)
    # the dense (BLAS) scores give the same matrix
    design = M._Design(sk.person, sk.item, sk.response, n_p, sk.items.size, sk.kmax, True,
                       dtype=np.float64) if sk.kmax == 2 else None
    if design is not None:
        s = M._dense_scores(sk, post, nodes, index, design, n_par)
        np.testing.assert_allclose(s.T @ s, full, rtol=1e-10, atol=1e-10)
        for idx in index:
            blocks = M._dense_item_blocks(s, idx)
            for row in range(idx.shape[0]):
                sel = np.flatnonzero(idx[row] >= 0)
                gi = idx[row, sel]
                np.testing.assert_allclose(blocks[row][np.ix_(sel, sel)], full[np.ix_(gi, gi)],
                                           rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("se_method", ["oakes", "xpd"])
def test_a_skill_of_anchors_only_has_no_standard_errors(se_method) -> None:
    rng = np.random.default_rng(9)
    sql = irt.generate_items(6, "2pl", rng, skill="sql", prefix="s")
    api = irt.generate_items(6, "2pl", rng, skill="api", prefix="a")
    bank = Bank.from_params([*sql.params(), *api.params()])
    x = irt.simulate_responses(rng.normal(size=400), bank, rng)
    fit = MMLCalibrator("2pl", se_method=se_method).fit(x, bank, anchors=sql)
    is_sql = np.array([s == "sql" for s in fit.items_.skills])
    assert np.all(np.isnan(fit.se_.a[is_sql])) and np.all(fit.se_.a[~is_sql] > 0)


def test_cli_se_method_is_honoured_and_reported(tmp_path, capsys) -> None:
    from web.cli import main

    out = tmp_path / "items.csv"
    for method, name in (("xpd", "cross-product (XPD) information"),
                         ("oakes", "Oakes observed information")):
        assert main(["calibrate", str(DATA / "responses_long.csv"), "--model", "2pl", "--quiet",
                     "--se-method", method, "--out", str(out)]) == 0
        assert f"standard errors: {name}" in capsys.readouterr().out
