"""Capitalization on item calibration error in the default design (issue 14): does a principled
remedy bring the re-estimated length ratio of `bench_default_design.py` to ≤ 0.60?

An experiment, not product code: it re-runs `bench_default_design.main`'s true-parameter and
re-estimated parts (same seed, same simulees, same answers, same random forms) with one remedy:

* ``--eb ROUNDS``: the re-calibration's slope prior is empirical Bayes (Mislevy 1986,
  Psychometrika 51:177–195): ``log a ~ N(μ, τ²)`` with ``μ`` and ``τ² = mean((log â − μ)² +
  SE²(log â))`` re-estimated over ``ROUNDS`` EM rounds (the lognormal prior's mode in ``a`` is
  corrected so that the prior on ``log a`` is ``N(μ, τ²)``);
* ``--sel MODE``: selection only (scoring and stopping keep the estimates) uses other slopes
  (van der Linden & Glas 2000, Applied Measurement in Education 13:35–53; Olea et al. 2012,
  Spanish J Psychology 15:424–441): ``lcb:K`` the lower bound ``â·exp(−K·SE(log â))``;
  ``eb`` the posterior mean of ``log a`` under the bank's method-of-moments hierarchical prior;
  ``post:TAU`` the same with ``τ = TAU``; ``einfo`` ``√E[a²]`` under that posterior (information
  integrated over the slope's posterior); ``truth`` / ``truth:abc`` the true slopes (and b, c):
  an unattainable bound. ``--sel-true`` applies the remedy in the true-parameter run too,
  with the shipped SEs (what the product would have);
* an extra, low-noise row (ORACLE): the administered items' answers re-scored with the TRUE
  parameters give the posterior variance the selection truly bought, free of scoring error and
  of squared-error sampling noise; its length ratio is against the true-parameter random fixed
  form's posterior variances.

Selection slopes are swapped into the compiled tables the selector reads (`engine.pool.
SkillTables.a`); the engine has no option for it.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_capitalization.py \
        [--n 1000] [--seed 14] [--eb 3 | --sel lcb:1 [--sel-true]] [--cal-n 1000]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_default_design as B  # noqa: E402

import irt  # noqa: E402
from calibration import ItemSpec, MMLCalibrator, Priors  # noqa: E402
from engine import ItemPool, make_engine  # noqa: E402
from engine.pool import compile_bank  # noqa: E402
from engine.simulation import draw_answers, simulate  # noqa: E402
from irt.io import read_items_csv  # noqa: E402
from item_bank.shipped import PROVISIONAL_PARAMETERS  # noqa: E402
from web.services.feasibility import (  # noqa: E402
    DEFAULT_MAX_EXPOSURE,
    Population,
    composite_weights,
    default_blueprint,
    tune_exposure,
)


def calibrate(true_bank: irt.Bank, n: int, per_skill: int, rng: np.random.Generator,
              prior_sd: float, eb_rounds: int, need_se: bool) -> tuple[irt.Bank, np.ndarray]:
    """`bench_default_design.recalibrated_bank` (same draws), optionally with an empirical-Bayes
    slope prior; returns the bank and the slopes' SEs (zeros when not computed)."""
    skills = sorted(set(true_bank.skills))
    theta = rng.normal(size=(n, len(skills)))
    persons, items, resp = [], [], []
    for k, s in enumerate(skills):
        idx = true_bank.skill_indices(s)
        data = irt.simulate_sparse_responses(theta[:, k], true_bank.take(idx), per_skill, rng)
        persons.append(data.person)
        items.append(idx[data.item])
        resp.append(data.response)
    data = irt.SparseResponses(np.concatenate(persons), np.concatenate(items),
                               np.concatenate(resp), n, len(true_bank))
    specs = [ItemSpec(i, "3pl", s) for i, s in zip(true_bank.item_ids, true_bank.skills,
                                                   strict=True)]
    mu, tau = 0.0, prior_sd
    need_se = need_se or eb_rounds > 0
    for rnd in range(eb_rounds + 1):
        # lognormal density in a: its mode is exp(μ' − τ²); μ' = μ + τ² puts N(μ, τ²) on log a
        cal = MMLCalibrator("3pl", priors=Priors(a=(mu + (tau**2 if rnd else 0.0), tau),
                                                 c=(6.0, 16.0)), standard_errors=need_se)
        cal.fit(data, specs)
        est = cal.items_
        order = [est.item_ids.index(i) for i in true_bank.item_ids]
        bank = est.take(order)
        se_a = np.asarray(cal.se_.a)[order] if need_se else np.zeros(len(bank))
        if rnd < eb_rounds:
            la, v = np.log(bank.a), (se_a / bank.a) ** 2
            mu = float(la.mean())
            tau = float(np.sqrt(np.mean((la - mu) ** 2 + v)))
            print(f"  EB round {rnd}: μ {mu:.3f}, τ {tau:.3f}")
    return bank, se_a


def selection_slopes(bank: irt.Bank, se_a: np.ndarray, mode: str, truth: irt.Bank,
                     grid: tuple[float, float, int]) -> None:
    """Swap the slopes (and for ``truth:abc`` b and c) the selector reads for ``bank``."""
    if mode == "none":
        return
    la, sl = np.log(bank.a), se_a / bank.a
    kind, _, par = mode.partition(":")
    mu = la.mean()
    tau2 = float(par) ** 2 if kind == "post" else max(float(la.var() - np.mean(sl**2)), 0.01)
    w = tau2 / (tau2 + sl**2)
    if kind == "lcb":
        a_sel = bank.a * np.exp(-float(par) * sl)
    elif kind in ("post", "eb"):
        a_sel = np.exp(mu + w * (la - mu))
    elif kind == "einfo":
        a_sel = np.exp(mu + w * (la - mu) + w * sl**2)
    elif kind == "truth":
        a_sel = truth.a.copy()
    else:
        raise SystemExit(f"unknown --sel {mode!r}")
    comp = compile_bank(bank, grid)
    for tab in comp.skills.values():
        a = a_sel[tab.idx]
        object.__setattr__(tab, "a", a)
        object.__setattr__(tab, "a2", a * a)
        if kind == "truth" and par == "abc":
            for name in "bc":
                object.__setattr__(tab, name, getattr(truth, name)[tab.idx].copy())
        object.__setattr__(tab, "info_grid", np.ascontiguousarray(tab.information(comp.nodes)))


def oracle_pv(result, true_bank: irt.Bank, weights: np.ndarray) -> np.ndarray:
    """Per simulee, the overall score's posterior variance with the administered answers scored
    by the TRUE parameters (EAP per skill, N(0, 1) prior, 81 nodes on [−5, 5])."""
    nodes = np.linspace(-5, 5, 81)
    lp = np.log(np.clip(irt.category_probabilities(nodes, true_bank), 1e-12, 1.0))
    names = list(result.skills)
    skill_pos = np.array([names.index(s) for s in true_bank.skills])
    n, n_skills = result.theta_true.shape
    ll = np.zeros((n, n_skills, nodes.size)) - 0.5 * nodes**2
    for j in range(result.items.shape[1]):
        ok = result.items[:, j] >= 0
        i, r = result.items[ok, j], result.responses[ok, j]
        ll[np.flatnonzero(ok), skill_pos[i], :] += lp[:, i, r].T
    p = np.exp(ll - ll.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    m = p @ nodes
    return (p @ nodes**2 - m**2) @ weights**2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--prior", type=float, default=0.5, help="sdlog of the slope prior")
    ap.add_argument("--eb", type=int, default=0, help="empirical-Bayes rounds")
    ap.add_argument("--sel", default="none")
    ap.add_argument("--sel-true", action="store_true")
    ap.add_argument("--cal-n", type=int, default=1000,
                    help="candidates in the re-calibration (the issue's figure: 1,000)")
    ap.add_argument("--skip-true", action="store_true", help="don't print the true run")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    bank = read_items_csv(PROVISIONAL_PARAMETERS).bank
    skills = sorted(set(bank.skills))
    pop = Population.standard(skills, "N(0, I)")
    grid = default_blueprint(skills).grid
    if args.sel_true:
        with open(PROVISIONAL_PARAMETERS, newline="") as fh:
            se = {r["item_id"]: float(r["se_a"]) for r in csv.DictReader(fh)}
        selection_slopes(bank, np.array([se[i] for i in bank.item_ids]), args.sel, bank, grid)
    pool = ItemPool(bank)
    bp = tune_exposure(pool, default_blueprint(skills), pop, r_max=DEFAULT_MAX_EXPOSURE)
    engine = make_engine(pool, bp)
    w = composite_weights(bp, list(engine.skill_names))
    sd_c = float(np.sqrt(w @ pop.covariance() @ w))
    theta = pop.draw(args.n, rng)
    answers = draw_answers(engine, theta, rng)
    res = simulate(engine, theta, answers=answers)
    f = B.figures(res, w, sd_c, bp)
    fixed_sq, fixed_pv = B.fixed_form_errors(engine, theta, w, answers, rng)
    fixed = B.length_ratio(f["sq_err"], f["length"], fixed_sq, rng)
    if not args.skip_true:
        B.report("true parameters", f, fixed, B.expected_ratio(f, fixed_pv))
    est_bank, se_a = calibrate(bank, args.cal_n, 15, rng, args.prior, args.eb, args.sel != "none")
    la_t, la_e = np.log(bank.a), np.log(est_bank.a)
    print(f"  calibration: RMSE of log a {np.sqrt(np.mean((la_e - la_t) ** 2)):.3f}, "
          f"corr(log â, log a) {np.corrcoef(la_e, la_t)[0, 1]:.3f}")
    selection_slopes(est_bank, se_a, args.sel, bank, grid)
    est_pool = ItemPool(est_bank)
    bp_est = tune_exposure(est_pool, default_blueprint(skills), pop, r_max=DEFAULT_MAX_EXPOSURE)
    eng_est = make_engine(est_pool, bp_est)
    answers = draw_answers(make_engine(pool, bp_est), theta, rng)
    res_est = simulate(eng_est, theta, answers=answers)
    f_est = B.figures(res_est, w, sd_c, bp_est)
    fixed_est = B.length_ratio(f_est["sq_err"], f_est["length"],
                               B.fixed_form_errors(eng_est, theta, w, answers, rng)[0], rng)
    B.report(f"re-estimated (eb {args.eb}, selection {args.sel})", f_est, fixed_est)
    true_c, est_c, se_c = B.overall_of(res_est, w)
    pv_or = oracle_pv(res_est, bank, w)
    pv_t = oracle_pv(res, bank, w)
    curve = B.fixed_curve(fixed_pv)
    length_or = B.length_at(float(np.sqrt(pv_or.mean())), curve)
    length_t = B.length_at(float(np.sqrt(pv_t.mean())), curve)
    print(f"- believed overall SE {np.sqrt(np.mean(se_c**2)):.4f}, true RMSE "
          f"{np.sqrt(np.mean((est_c - true_c) ** 2)):.4f}")
    print(f"- ORACLE re-estimated: length {res_est.test_length.mean():.2f}, RMSE bought "
          f"{np.sqrt(pv_or.mean()):.4f} → ratio {res_est.test_length.mean() / length_or:.3f}; "
          f"true run: RMSE bought {np.sqrt(pv_t.mean()):.4f} → ratio "
          f"{res.test_length.mean() / length_t:.3f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
