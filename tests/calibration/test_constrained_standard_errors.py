"""Standard errors under equality constraints: the rating scale model (locations plus category
parameters shared by a group's items) and the common slope of a Rasch skill that mixes category
counts. Checked against the numerical Hessian of the marginal likelihood written directly in
the constrained parameters (computed here with `irt.log_likelihood_grid`, not with the
calibrator's internals), against mirt's PCM standard errors on the Science data, and against
the replication SD of the estimates on simulated RSM data."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import irt
from calibration import MMLCalibrator
from calibration import mml as M
from irt import Bank, ItemParams, normal_grid
from irt.io import read_responses_csv

DATA = Path(__file__).parent / "data"
SCIENCE = DATA / "science4"
GRID = {"n_nodes": 61, "half_width": 6.0}


def _marginal_loglik(x: np.ndarray, ids: tuple[str, ...], models: tuple[str, ...],
                     delta: Callable[[np.ndarray], list[np.ndarray]], per_person: bool = False
                     ) -> Callable:
    """``ℓ(v) = Σ_p log Σ_q w_q Π_i P_i(x_pi | z_q)`` with ``v = (a*, …)``: every item's slope
    is the common ``a*`` on θ ~ N(0, 1) and its intercepts are ``delta(v)[i]`` (the terms
    ``ℓ_p`` themselves with ``per_person``)."""
    quad = normal_grid(GRID["n_nodes"], 0.0, 1.0, GRID["half_width"])

    def loglik(v: np.ndarray):
        a = float(v[0])
        items = []
        for iid, model, d in zip(ids, models, delta(v), strict=True):
            if model == "rasch":
                items.append(ItemParams(iid, "2pl", a, -float(d[0]) / a))
            else:
                items.append(ItemParams(iid, "gpcm", a, thresholds=tuple(-d / a)))
        ll = irt.log_likelihood_grid(quad.nodes, Bank.from_params(items), x) + quad.log_weights
        top = ll.max(axis=1, keepdims=True)
        terms = top[:, 0] + np.log(np.exp(ll - top).sum(axis=1))
        return terms if per_person else float(np.sum(terms))

    return loglik


def _hessian(f: Callable[[np.ndarray], float], v0: np.ndarray, h: float = 1e-4) -> np.ndarray:
    k = v0.size
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            out[i, j] = out[j, i] = (f(v0 + e_i + e_j) - f(v0 + e_i - e_j)
                                     - f(v0 - e_i + e_j) + f(v0 - e_i - e_j)) / (4 * h * h)
    return out


def _cross_product(f: Callable[[np.ndarray], np.ndarray], v0: np.ndarray,
                   h: float = 1e-5) -> np.ndarray:
    """``Σ_p s_p s_pᵀ`` of the per-person scores ``s_p = ∂ℓ_p/∂v`` (central differences)."""
    s = np.column_stack([(f(v0 + h * e) - f(v0 - h * e)) / (2 * h) for e in np.eye(v0.size)])
    return s.T @ s


def _numerical_se(info: np.ndarray, v0: np.ndarray,
                  steps: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """SEs of the reported steps ``b = steps(v)`` from ``info⁻¹`` by the delta method."""
    cov = np.linalg.inv(info)
    h = 1e-6
    jac = np.column_stack([(steps(v0 + h * e) - steps(v0 - h * e)) / (2 * h)
                           for e in np.eye(v0.size)])
    return np.sqrt(np.diag(jac @ cov @ jac.T))


@pytest.mark.parametrize("se_method", ["oakes", "xpd"])
def test_rsm_standard_errors_are_those_of_the_rating_scale_parameters(se_method) -> None:
    """Science (4 items × 4 categories) by RSM: Oakes' SEs equal the inverse numerical Hessian
    of the marginal likelihood in ``(a*, β_1..β_4, u_1, u_2)``, ``δ_ik = β_i + t_k``,
    ``t = (u_1, u_2, −u_1 − u_2)``; XPD's equal the inverse cross-product of the per-person
    scores in those parameters. Treating each item's steps as free (the old computation) gave
    SEs up to twice as large (Comfort's first step: 0.42 against 0.21 by Oakes)."""
    log = read_responses_csv(SCIENCE / "responses_long.csv")
    fit = MMLCalibrator("rsm", tol=1e-9, max_iter=5000, se_method=se_method, **GRID).fit(log)
    assert fit.converged_
    bank = fit.items_
    x = log.for_bank(bank)
    n = len(bank.item_ids)
    delta_hat = -bank.thresholds * bank.a[:, None]  # δ_ik, reported a = common_a = 1
    beta = delta_hat.mean(axis=1)
    u = (delta_hat[0] - beta[0])[:2]
    a_star = fit.skills_[0].latent_sd * 1.0

    def delta(v: np.ndarray) -> list[np.ndarray]:
        t = np.array([v[n + 1], v[n + 2], -v[n + 1] - v[n + 2]])
        return [v[1 + i] + t for i in range(n)]

    v0 = np.concatenate([[a_star], beta, u])
    if se_method == "oakes":
        info = -_hessian(_marginal_loglik(x, bank.item_ids, bank.models, delta), v0)
    else:
        info = _cross_product(_marginal_loglik(x, bank.item_ids, bank.models, delta, True), v0)
    se = _numerical_se(info, v0, lambda v: -np.concatenate(delta(v))).reshape(n, 3)
    np.testing.assert_allclose(fit.se_.thresholds, se, rtol=2e-3)


def test_a_rasch_skill_mixing_category_counts_has_one_slope_in_its_standard_errors() -> None:
    """Rasch items, 3- and 4-category PCM items in one skill are three groups sharing one
    slope ``a* = σ``: one index across the groups (`_parameter_index`), and SEs equal to the
    numerical Hessian's in ``(a*, δ)``. Per-group slopes (the old index) count σ three times."""
    rng = np.random.default_rng(5)
    items = [ItemParams(f"r{k}", "rasch", 1.0, rng.normal()) for k in range(4)]
    items += [ItemParams(f"p{k}", "pcm", 1.0, thresholds=tuple(np.sort(rng.normal(0, 1, 2))))
              for k in range(3)]
    items += [ItemParams(f"q{k}", "pcm", 1.0, thresholds=tuple(np.sort(rng.normal(0, 1, 3))))
              for k in range(3)]
    truth = Bank.from_params(items)
    x = irt.simulate_responses(rng.normal(0, 1.3, 600), truth, rng)
    cal = MMLCalibrator("pcm", tol=1e-9, max_iter=5000, se_method="oakes", **GRID)
    fit = cal.fit(x, items=truth)
    assert fit.converged_
    bank = fit.items_
    widths = [1] * 4 + [2] * 3 + [3] * 3
    starts = np.cumsum([0, *widths])

    def delta(v: np.ndarray) -> list[np.ndarray]:
        return [v[1 + starts[i]:1 + starts[i + 1]] for i in range(len(widths))]

    v0 = np.concatenate([[fit.skills_[0].latent_sd],
                         *[-np.atleast_1d(bank.b[i]) if i < 4
                           else -bank.thresholds[i, :widths[i]] for i in range(10)]])
    info = -_hessian(_marginal_loglik(x, bank.item_ids, bank.models, delta), v0)
    se = _numerical_se(info, v0, lambda v: -np.concatenate(delta(v)))
    got = np.concatenate([fit.se_.b[:4]] + [fit.se_.thresholds[i, :widths[i]]
                                            for i in range(4, 10)])
    np.testing.assert_allclose(got, se, rtol=2e-3)


def test_the_common_slope_has_one_index_across_groups(monkeypatch) -> None:
    """Rasch, PCM (3 categories) and RSM (4 categories) items in one skill: one slope index in
    every group, the XPD item blocks (large-bank path) read that slope's score summed over all
    groups, and the structural parameters are as many as the model counts."""
    rng = np.random.default_rng(2)
    items = [ItemParams(f"r{k}", "rasch", 1.0, rng.normal()) for k in range(3)]
    items += [ItemParams(f"p{k}", "pcm", 1.0, thresholds=(-0.5, 0.5)) for k in range(2)]
    items += [ItemParams(f"q{k}", "rsm", 1.0, thresholds=(-1.0 + k, k, 1.0 + k))
              for k in range(3)]
    bank = Bank.from_params(items)
    x = irt.simulate_responses(rng.normal(0, 1, 400), bank, rng)
    captured = {}
    original = MMLCalibrator._covariance

    def capture(self, sk, post, nodes, priors, design):
        captured.update(sk=sk, post=post, nodes=nodes)
        return original(self, sk, post, nodes, priors, design)

    monkeypatch.setattr(MMLCalibrator, "_covariance", capture)
    fit = MMLCalibrator("pcm", se_method="xpd").fit(x, items=bank)
    sk, post, nodes = captured["sk"], captured["post"], captured["nodes"]
    assert len(sk.groups) == 3
    index, n_par = M._parameter_index(sk)
    slopes = {int(idx[row, 0]) for g, idx in zip(sk.groups, index, strict=True)
              for row in range(idx.shape[0]) if g.tied[row]}
    assert len(slopes) == 1
    jac = M._constraint_jacobian(sk, index, n_par)
    assert jac is not None and np.linalg.matrix_rank(jac) == jac.shape[1]
    # one slope, 3 Rasch + 2·2 PCM intercepts, 3 RSM locations and 2 category parameters
    assert jac.shape[1] == 1 + 3 + 4 + 3 + 2 == fit.n_parameters_
    scores = M._response_scores(sk, post, nodes, index)
    full = M._xpd_full(scores, index, sk.person_global.size, n_par, as_dense=True)
    shared = M._shared_slope_scores(sk, scores)
    for sc, idx, g in zip(scores, index, sk.groups, strict=True):
        blocks = M._xpd_item_blocks(sk, g, idx, sc, shared)
        for row in range(idx.shape[0]):
            sel = np.flatnonzero(idx[row] >= 0)
            gi = idx[row, sel]
            np.testing.assert_allclose(blocks[row][np.ix_(sel, sel)], full[np.ix_(gi, gi)],
                                       rtol=1e-10, atol=1e-10)


def _mirt_pcm(path: Path) -> dict[tuple[str, str], float]:
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] == "mirt_PCM_MML" and row["param"] == "d" and row["se"]:
                out[(row["item_id"], row["category"])] = float(row["se"])
    return out


def test_pcm_first_step_standard_errors_match_mirt_on_science() -> None:
    """mirt 1.45.1 PCM (Oakes, 121 nodes on ±8): ``d_1 = δ_1`` so the SE of the first step
    ``b_1 = −δ_1`` is that of ``d_1``; the common slope ``a* = σ`` is one parameter."""
    log = read_responses_csv(SCIENCE / "responses_long.csv")
    ref = _mirt_pcm(SCIENCE / "ref_items_mirt.csv")
    fit = MMLCalibrator("pcm", n_nodes=121, half_width=8.0, tol=1e-7, max_iter=5000,
                        se_method="oakes").fit(log)
    for i, iid in enumerate(fit.items_.item_ids):
        assert fit.se_.thresholds[i, 0] == pytest.approx(ref[(iid, "1")], rel=1e-3), iid


def test_rsm_standard_errors_match_the_replication_sd() -> None:
    """Known truth: 15 RSM items × 4 categories (steps ``b_i + τ_k``), θ ~ N(0, 1.3²), N = 300,
    60 seeded replications with the default SEs (Oakes at this N). The mean reported SE of the
    45 steps is within 10 % of their replication SD (benchmarks/bench_se_coverage.py runs the
    200-replication version at N = 300 and 2,000). The SEs of free per-item steps were about
    1.5 times too large here."""
    rng = np.random.default_rng(16)
    tau = np.array([-1.0, 0.1, 0.9])
    bank = Bank.from_params([ItemParams(f"i{k}", "rsm", 1.0, thresholds=tuple(b + tau))
                             for k, b in enumerate(np.linspace(-1.5, 1.5, 15))])
    est, ses = [], []
    for _ in range(60):
        x = irt.simulate_responses(rng.normal(0, 1.3, 300), bank, rng)
        fit = MMLCalibrator("rsm").fit(x)
        assert fit.converged_
        est.append(fit.items_.thresholds.ravel())
        ses.append(fit.se_.thresholds.ravel())
    ratio = np.mean(ses, axis=0) / np.std(est, axis=0, ddof=1)
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.10)
    assert np.all((ratio > 0.75) & (ratio < 1.3))


def test_rsm_item_blocks_are_the_blocks_of_the_structural_cross_product(monkeypatch) -> None:
    """Large banks take item blocks of the XPD: an RSM item's block is over its structural
    parameters ``(a*, β_i, u)``, the corresponding block of ``Jᵀ (Σ_p s_p s_pᵀ) J``, and its
    covariance ``J_i block⁻¹ J_iᵀ``."""
    rng = np.random.default_rng(4)
    tau = np.array([-1.0, 0.1, 0.9])
    bank = Bank.from_params([ItemParams(f"i{k}", "rsm", 1.0, thresholds=tuple(b + tau))
                             for k, b in enumerate(np.linspace(-1.5, 1.5, 6))])
    x = irt.simulate_responses(rng.normal(0, 1.3, 500), bank, rng)
    captured = {}
    original = MMLCalibrator._covariance

    def capture(self, sk, post, nodes, priors, design):
        captured.update(sk=sk, post=post, nodes=nodes)
        return original(self, sk, post, nodes, priors, design)

    monkeypatch.setattr(MMLCalibrator, "_covariance", capture)
    cal = MMLCalibrator("rsm", se_method="xpd")
    cal.fit(x)
    sk, post, nodes = captured["sk"], captured["post"], captured["nodes"]
    (g,) = sk.groups
    index, n_par = M._parameter_index(sk)
    jac = M._constraint_jacobian(sk, index, n_par)
    assert jac is not None and jac.shape[1] == 1 + 6 + 2  # a*, β_1..β_6, u_1, u_2
    scores = M._response_scores(sk, post, nodes, index)
    info = jac.T @ M._xpd_full(scores, index, sk.person_global.size, n_par, True) @ jac
    shared = M._shared_slope_scores(sk, scores)
    blocks = M._xpd_item_blocks(sk, g, index[0], scores[0], shared)
    cov = np.zeros_like(blocks)
    cal._rsm_item_blocks(sk, g, index[0], scores[0], shared, blocks, cov)
    c_mat = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    for row in range(6):
        sel = [0, 1 + row, 7, 8]
        j_i = np.zeros((4, 4))
        j_i[0, 0] = 1.0
        j_i[1:, 1] = 1.0
        j_i[1:, 2:] = c_mat
        expected = j_i @ np.linalg.inv(info[np.ix_(sel, sel)]) @ j_i.T
        np.testing.assert_allclose(cov[row], expected, rtol=1e-8, atol=1e-12)
