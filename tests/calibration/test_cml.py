"""Conditional ML (Rasch, PCM, RSM): agreement with psychotools on real data, ESFs and derivatives
against brute-force enumeration and finite differences, an independent optimizer on the
conditional likelihood with missing data, recovery and sample independence, bad input."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

import irt
from calibration.cml import (
    CMLCalibrator,
    _category_counts,
    _derivatives,
    _design,
    _pattern_groups,
    elementary_symmetric_functions,
)
from irt import Bank, ItemParams, SparseResponses
from irt.io import read_responses_csv

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def science():
    log = read_responses_csv(DATA / "science4_responses_long.csv")
    with open(DATA / "science4_psychotools_cml.csv", newline="") as f:
        ref = list(csv.DictReader(f))
    return log, ref


def _reference(ref, method, ids):
    b = np.full((len(ids), 3), np.nan)
    se = np.full_like(b, np.nan)
    for row in ref:
        if row["method"] == method and row["param"] == "b_step":
            i, k = ids.index(row["item_id"]), int(row["category"]) - 1
            b[i, k], se[i, k] = float(row["value"]), float(row["se"])
    return b, se


# ---------------------------------------------------------------- psychotools on real data
@pytest.mark.parametrize(("model", "method", "loglik", "n_par"), [
    ("pcm", "psychotools_pcmodel_CML", -791.244459804202, 11),
    ("rsm", "psychotools_rsmodel_CML", -807.257813010688, 5),
])
def test_science_matches_psychotools(science, model, method, loglik, n_par) -> None:
    log, ref = science
    fit = CMLCalibrator(model).fit(log)
    b, se = _reference(ref, method, list(fit.item_ids_))
    assert fit.converged_
    assert fit.n_parameters_ == n_par
    assert fit.loglik_ == pytest.approx(loglik, abs=1e-6)
    # centred thresholds (all steps sum to 0) within 1e-3 of psychotools (in fact ~1e-5)
    np.testing.assert_allclose(fit.thresholds_, b, atol=1e-4)
    np.testing.assert_allclose(fit.se_.thresholds, se, rtol=1e-4)
    assert fit.thresholds_.sum() == pytest.approx(0.0, abs=1e-12)
    assert fit.items_.models == ("gpcm",) * 4
    np.testing.assert_array_equal(fit.items_.a, 1.0)
    np.testing.assert_allclose(fit.items_.thresholds, fit.thresholds_)
    locations = {row["item_id"]: float(row["value"]) for row in ref
                 if row["method"] == method and row["param"] == "location"}
    np.testing.assert_allclose(fit.locations_, [locations[i] for i in fit.item_ids_], atol=1e-4)


def test_science_rsm_steps_are_shared(science) -> None:
    fit = CMLCalibrator("rsm").fit(science[0])
    gaps = np.diff(fit.thresholds_, axis=1)
    np.testing.assert_allclose(gaps, np.broadcast_to(gaps[0], gaps.shape), atol=1e-10)
    np.testing.assert_allclose(fit.thresholds_ - fit.locations_[:, None],
                               np.broadcast_to(fit.rsm_steps_, (4, 3)), atol=1e-10)
    # psychotools coef(): κ_k = Σ_{v≤k} (τ_v − τ_1), the category parameters with κ_1 = 0
    tau = fit.rsm_steps_
    np.testing.assert_allclose(np.cumsum(tau - tau[0])[1:], [0.9221997, 4.710304], atol=1e-4)


# ---------------------------------------------------------------- the ESFs and derivatives
def _brute_esf(eps: np.ndarray, m: list[int]) -> np.ndarray:
    gamma = np.zeros(sum(m) + 1)
    for pattern in itertools.product(*[range(k + 1) for k in m]):
        gamma[sum(pattern)] += np.prod([eps[i, k] for i, k in enumerate(pattern)])
    return gamma


def test_esf_match_brute_force_enumeration() -> None:
    rng = np.random.default_rng(3)
    m = [1, 3, 2, 1, 4]
    eps = np.zeros((5, 5))
    eps[:, 0] = 1.0
    for i, k in enumerate(m):
        eps[i, 1:k + 1] = np.exp(rng.normal(size=k))
    gamma, without = elementary_symmetric_functions(eps)
    np.testing.assert_allclose(gamma, _brute_esf(eps, m), rtol=1e-12)
    for i in range(5):
        rest = [j for j in range(5) if j != i]
        expected = _brute_esf(eps[rest], [m[j] for j in rest])
        np.testing.assert_allclose(without[i, : expected.size], expected, rtol=1e-12)
        assert np.all(without[i, expected.size:] == 0)


def _problem(model: str, seed: int, missing: float):
    rng = np.random.default_rng(seed)
    n_items = 5
    x = rng.integers(0, 3 if model != "rasch" else 2, size=(300, n_items)).astype(float)
    x[rng.random(x.shape) < missing] = np.nan
    data = SparseResponses.from_dense(x)
    top = np.full(n_items, 2 if model != "rasch" else 1, dtype=np.int64)
    groups, informative = _pattern_groups(data, top)
    counts = _category_counts(data, top, informative)
    return x, data, top, groups, counts


@pytest.mark.parametrize("model", ["rasch", "pcm", "rsm"])
def test_gradient_and_information_match_finite_differences(model) -> None:
    _, _, m, groups, counts = _problem(model, 5, 0.25)
    assert len(groups) > 5  # missing data: several response-pattern groups
    design = _design(model, m)
    psi = np.random.default_rng(1).normal(scale=0.5, size=design.shape[1])
    d0 = _derivatives(groups, m, counts, design @ psi, hessian=True)
    h = 1e-5
    num_grad = np.zeros(psi.size)
    num_info = np.zeros((psi.size, psi.size))
    for k in range(psi.size):
        e = np.zeros(psi.size)
        e[k] = h
        up = _derivatives(groups, m, counts, design @ (psi + e), hessian=False)
        dn = _derivatives(groups, m, counts, design @ (psi - e), hessian=False)
        num_grad[k] = (up.loglik - dn.loglik) / (2 * h)
        num_info[:, k] = -(design.T @ up.grad - design.T @ dn.grad) / (2 * h)
    np.testing.assert_allclose(design.T @ d0.grad, num_grad, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(design.T @ d0.info @ design, num_info, rtol=1e-6, atol=1e-5)


def _conditional_loglik_by_enumeration(x: np.ndarray, delta_of) -> float:
    """Σ_p log P(x_p | r_p) with the denominator summed over every pattern of the same items."""
    total = 0.0
    for row in x:
        seen = np.flatnonzero(~np.isnan(row))
        xs = row[seen].astype(int)
        num = -sum(delta_of(i, k) for i, k in zip(seen, xs, strict=True))
        r = xs.sum()
        den = [np.exp(-sum(delta_of(i, k) for i, k in zip(seen, pat, strict=True)))
               for pat in itertools.product(*[range(3)] * seen.size) if sum(pat) == r]
        total += num - np.log(np.sum(den))
    return float(total)


def test_pcm_with_missing_data_matches_an_independent_optimizer() -> None:
    rng = np.random.default_rng(11)
    truth = Bank.from_params(ItemParams(f"i{k}", "gpcm", 1.0, thresholds=tuple(t))
                             for k, t in enumerate(rng.normal(size=(4, 2)).cumsum(1) * 0.7))
    x = irt.simulate_responses(rng.normal(size=150), truth, rng).astype(float)
    x[rng.random(x.shape) < 0.2] = np.nan

    def negll(free: np.ndarray) -> float:
        delta = np.concatenate([[0.0], free]).reshape(4, 2)
        return -_conditional_loglik_by_enumeration(
            x, lambda i, k: 0.0 if k == 0 else delta[i, k - 1])

    ref = minimize(negll, np.zeros(7), method="BFGS", options={"gtol": 1e-7})
    fit = CMLCalibrator("pcm").fit(x)
    assert fit.n_groups_ > 1
    assert fit.loglik_ == pytest.approx(-ref.fun, abs=1e-6)
    delta = np.concatenate([[0.0], ref.x]).reshape(4, 2)
    steps = np.column_stack([delta[:, 0], delta[:, 1] - delta[:, 0]])
    np.testing.assert_allclose(fit.thresholds_, steps - steps.mean(), atol=1e-4)


def test_rasch_on_lsat6_matches_an_independent_optimizer() -> None:
    # no psychotools reference ships for the Rasch model: check against a direct maximisation of
    # the conditional likelihood, summed over all 2^5 patterns, with its numerical Hessian
    log = read_responses_csv(DATA / "responses_long.csv")
    fit = CMLCalibrator("rasch").fit(log)
    x = np.zeros((log.data.n_persons, 5))
    x[log.data.person, log.data.item] = log.data.response
    patterns = np.array(list(itertools.product([0, 1], repeat=5)))

    def negll(free: np.ndarray) -> float:
        b = np.concatenate([[0.0], free])
        num = -(x @ b)
        den = np.array([np.log(np.sum(np.exp(-(patterns[patterns.sum(1) == r] @ b))))
                        for r in range(6)])
        return -float(np.sum(num - den[x.sum(1).astype(int)]))

    ref = minimize(negll, np.zeros(4), method="BFGS", options={"gtol": 1e-9})
    b = np.concatenate([[0.0], ref.x])
    np.testing.assert_allclose(fit.thresholds_[:, 0], b - b.mean(), atol=1e-5)
    assert fit.loglik_ == pytest.approx(-ref.fun, abs=1e-8)
    h = 1e-4
    hess = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            e_i, e_j = np.eye(4)[i] * h, np.eye(4)[j] * h
            hess[i, j] = (negll(ref.x + e_i + e_j) - negll(ref.x + e_i - e_j)
                          - negll(ref.x - e_i + e_j) + negll(ref.x - e_i - e_j)) / (4 * h * h)
    centre = np.eye(5) - 1.0 / 5
    lin = centre[:, 1:]  # b_c = C (0, ψ)
    se = np.sqrt(np.diag(lin @ np.linalg.inv(hess) @ lin.T))
    np.testing.assert_allclose(fit.se_.b, se, rtol=1e-4)


# ---------------------------------------------------------------- recovery, sample independence
@pytest.mark.parametrize("model", ["rasch", "pcm", "rsm"])
def test_recovery_is_the_same_whatever_the_ability_distribution(model) -> None:
    rng = np.random.default_rng(21)
    n_items = 8
    if model == "rasch":
        b = rng.normal(size=n_items)
        b -= b.mean()
        truth = Bank.from_params(ItemParams(f"i{k}", "1pl", 1.0, float(v))
                                 for k, v in enumerate(b))
        steps = b[:, None]
    else:
        loc = rng.normal(scale=0.8, size=n_items)
        tau = np.array([-1.0, 0.1, 0.9])
        steps = loc[:, None] + (tau if model == "rsm" else rng.normal(size=(n_items, 3)))
        steps -= steps.mean()
        truth = Bank.from_params(ItemParams(f"i{k}", "gpcm", 1.0, thresholds=tuple(t))
                                 for k, t in enumerate(steps))
    for theta in (rng.normal(-1.0, 0.6, 3000), rng.gamma(2.0, 0.8, 3000) - 0.5):
        fit = CMLCalibrator(model).fit(irt.simulate_responses(theta, truth, rng))
        z = (fit.thresholds_ - steps) / fit.se_.thresholds if model != "rasch" \
            else (fit.thresholds_[:, 0] - steps[:, 0]) / fit.se_.b
        assert np.max(np.abs(z)) < 4.0
        assert np.sqrt(np.mean(z**2)) < 1.6


def test_persons_by_wle_and_ml_given_the_items(science) -> None:
    log, _ = science
    fit = CMLCalibrator("pcm").fit(log)
    bank = fit.items_
    wle = irt.wle(log.data, bank)
    np.testing.assert_allclose(fit.scores_.theta, wle.theta)
    mle = fit.person_estimates(log.data, "mle")
    scores = np.bincount(log.data.person, weights=log.data.response)
    # the raw score is sufficient: persons with the same score get the same estimate
    for s in np.unique(scores):
        same = scores == s
        assert np.ptp(fit.scores_.theta[same]) < 1e-9
        assert np.ptp(mle.theta[same]) < 1e-9
    inner = (scores > 0) & (scores < 12)
    # ML in the Rasch family solves Σ_i E[X_i | θ] = r (the raw score)
    expected = irt.expected_score(mle.theta[inner], bank).sum(axis=1)
    np.testing.assert_allclose(expected, scores[inner], atol=1e-6)
    # both increase with the score; WLE is finite for the extreme scores too
    order = np.argsort(scores)
    assert np.all(np.diff(fit.scores_.theta[order]) >= -1e-9)
    assert np.all(np.isfinite(fit.scores_.theta)) and np.all(fit.scores_.se > 0)


# ---------------------------------------------------------------- bad input
def test_unobserved_category_is_refused_naming_the_item() -> None:
    x = np.array([[0, 2], [2, 0], [0, 1], [1, 2], [2, 1], [0, 0]], dtype=float)
    x[:, 1] = np.where(x[:, 1] == 1, 2, x[:, 1])  # item 2 never in category 1
    with pytest.raises(ValueError, match=r"item 'b'.*category 1"):
        CMLCalibrator("pcm").fit(x, item_ids=["a", "b"])


def test_item_without_variation_or_responses_is_named() -> None:
    x = np.array([[0, 1, 0], [0, 0, 1], [0, 1, 1], [0, 0, 0]], dtype=float)
    with pytest.raises(ValueError, match=r"item 'q1': every response is in category 0"):
        CMLCalibrator("rasch").fit(x, item_ids=["q1", "q2", "q3"])
    x[:, 0] = np.nan
    with pytest.raises(ValueError, match=r"item 'q1' has no responses"):
        CMLCalibrator("rasch").fit(irt.SparseResponses.from_dense(x), item_ids=["q1", "q2", "q3"])


def test_rasch_refuses_polytomous_responses() -> None:
    with pytest.raises(ValueError, match="Rasch model is for 0/1"):
        CMLCalibrator("rasch").fit(np.array([[0, 1], [2, 0], [1, 1]]))


def test_unknown_model_and_person_method() -> None:
    with pytest.raises(ValueError, match="CML model"):
        CMLCalibrator("2pl").fit(np.eye(3))
    with pytest.raises(ValueError, match="person_method"):
        CMLCalibrator("rasch", person_method="eap").fit(np.eye(3))


# ---------------------------------------------------------------- the command line
def test_cli_calibrate_method_cml_writes_items_and_wle_scores(science, tmp_path, capsys) -> None:
    from irt.io import read_items_csv
    from web.cli import main

    out, scores = tmp_path / "items.csv", tmp_path / "scores.csv"
    code = main(["calibrate", str(DATA / "science4_responses_long.csv"), "--method", "cml",
                 "--model", "pcm", "--out", str(out), "--scores", str(scores)])
    assert code == 0
    table = read_items_csv(out)
    b, se = _reference(science[1], "psychotools_pcmodel_CML", list(table.bank.item_ids))
    np.testing.assert_allclose(table.bank.thresholds, b, atol=1e-4)
    np.testing.assert_allclose([[float(v) for v in table.extra[f"se_b{k}"]] for k in (1, 2, 3)],
                               se.T, rtol=1e-4)
    assert "conditional loglik -791.2445" in capsys.readouterr().out
    with open(scores, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 392 and all(np.isfinite(float(r["theta"])) for r in rows)
    assert main(["calibrate", str(DATA / "science4_responses_long.csv"), "--method", "cml",
                 "--model", "2pl", "--out", str(out)]) != 0
    assert "--model must be one of rasch, pcm, rsm" in capsys.readouterr().err
