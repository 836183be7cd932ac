"""Multidimensional CAT benchmark (issue 9): test length, accuracy and per-step time.

Study A (length and accuracy): a 6-skill 2PL bank (150 items per skill, a ~ N(1.4, 0.3²)
clipped at 0.5, b ~ N(0, 1)); true θ ~ N(0, R) with R's 15 correlations evenly spread over
0.3–0.7 (the matrix of the recovery test); SE target 0.3 on every skill, at most 200 items.
Every engine answers from the same pre-drawn answer matrix:

* Proficio ``McatEngine`` (MAP + Laplace under N(0, R), D-optimal selection), run with the
  correlation matrix *estimated* from a separate calibration sample of 5,000 persons
  (`calibration.correlation`), as in production;
* separate per-skill adaptive tests: Proficio ``CatEngine`` (EAP per skill, MFI, each skill
  stops at SE ≤ 0.3) — the unidimensional engine of issue 5;
* PyPI ``mirt`` 1.2 ``MCATEngine`` (D-optimality, its own EAP/MAP scoring, max-SE stop) on the
  same items, for the per-step time only (first 10 sessions; it answers from the same matrix).

Study B (per-step time): 1,000 items, 8 skills (125 items each), correlations 0.5; time of one
``record`` (rescoring all skills + stop check + D-optimal selection) over 100 sessions of up to
40 items, against mirt ``MCATEngine.administer_item`` on the same bank and answers.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python
benchmarks/bench_mcat.py [--simulees 1000]``. Prints a Markdown report (a script, not library code).
``--compare [REV]`` times study B's step with this engine and with the engine of commit ``REV``
(default: the one before issue 13) side by side in one run (``bench_cat.side_by_side``).

Since issue 13 the multidimensional CAT is the blueprint's roles, not a class: ``correlations``
(MAP scorer under the correlated prior, D-optimal selection, the ``open`` balancer) built by
`engine.make_engine`, and studies run through the vectorized `engine.simulation.simulate`.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import bench_cat  # noqa: E402  (same folder: the side-by-side runner)
import numpy as np  # noqa: E402

import engine  # noqa: E402
import irt  # noqa: E402
from engine.simulation import draw_answers, simulate  # noqa: E402

SE_TARGET = 0.3


def mcat_engine(bank: irt.Bank, bp: engine.Blueprint, correlations: np.ndarray):
    """The multidimensional CAT of a blueprint over ``bank`` with latent ``correlations``
    (written against the blueprint JSON, so it also builds the engine of earlier commits)."""
    skills = tuple(dict.fromkeys(bank.skills))
    return engine.make_engine(bank, engine.Blueprint.from_dict({
        **bp.to_dict(), "skills": [{"skill": s} for s in skills],
        "correlations": np.asarray(correlations).tolist()}))
#: mirt's MCATEngine takes ~0.1 s per step here: time it on the first sessions only.
MIRT_SESSIONS = 10


def make_bank(n_skills: int, per_skill: int, seed: int) -> irt.Bank:
    g = np.random.default_rng(seed)
    items = []
    for k in range(n_skills):
        a = np.clip(g.normal(1.4, 0.3, per_skill), 0.5, None)
        b = g.normal(0.0, 1.0, per_skill)
        items += [irt.ItemParams(f"s{k}_{i:03d}", "2pl", a[i], b[i], skill=f"s{k}")
                  for i in range(per_skill)]
    return irt.Bank.from_params(items)


def spread_correlations(k: int, lo: float, hi: float, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    r = np.eye(k)
    r[np.triu_indices(k, 1)] = g.permutation(np.linspace(lo, hi, k * (k - 1) // 2))
    return np.triu(r) + np.triu(r, 1).T


def simulate_answers(bank: irt.Bank, skills, theta, g) -> np.ndarray:
    x = np.zeros((theta.shape[0], len(bank)), dtype=np.int64)
    for k, s in enumerate(skills):
        idx = bank.skill_indices(s)
        x[:, idx] = irt.simulate_responses(theta[:, k], bank.take(idx), g)
    return x


def mirt_engine(bank: irt.Bank, skills, cov: np.ndarray, max_items: int):
    import mirt
    from mirt.cat import MCATEngine

    k = len(skills)
    pattern = np.zeros((len(bank), k))
    for j, s in enumerate(skills):
        pattern[bank.skill_indices(s), j] = 1.0
    m = mirt.MultidimensionalModel(len(bank), k, model_type="confirmatory",
                                   loading_pattern=pattern)
    m.set_parameters(slopes=pattern * bank.a[:, None], intercepts=-bank.a * bank.b)
    m._is_fitted = True  # mirt has no public constructor for known parameters
    return MCATEngine(m, item_selection="D-optimality", stopping_rule="max_se",
                      scoring_method="MAP", initial_covariance=cov, max_items=max_items,
                      trace_threshold=SE_TARGET, seed=0)


def study_a(n: int, seed: int, tighter: tuple[float, ...] = (), reference: bool = True
            ) -> None:
    k = 6
    bank = make_bank(k, 150, seed)
    skills = tuple(f"s{j}" for j in range(k))
    r = spread_correlations(k, 0.3, 0.7, seed)
    g = np.random.default_rng(seed + 1)
    # (imported here: ``--compare`` children import an older irt/ that calibration/ may not fit)
    from calibration.correlation import estimate_latent_correlation

    # calibration sample: the correlation matrix the engine uses is estimated, not the truth
    cal_theta = g.multivariate_normal(np.zeros(k), r, size=5000)
    cal = simulate_answers(bank, skills, cal_theta, g)
    cal_items = np.concatenate([g.choice(bank.skill_indices(s), 30, replace=False)
                                for s in skills])
    mask = np.zeros(cal.shape, dtype=bool)
    mask[:, cal_items] = True
    t0 = time.perf_counter()
    est = estimate_latent_correlation(bank, cal, mask=mask)
    t_corr = time.perf_counter() - t0
    r_hat = np.asarray(est.for_skills(skills))
    theta = g.multivariate_normal(np.zeros(k), r, size=n)
    bp = engine.Blueprint(max_items=200, se_target=SE_TARGET)
    uni = engine.CatEngine(bank, bp)
    answers = draw_answers(uni, theta, g)
    mcat = mcat_engine(bank, bp, correlations=r_hat)
    t0 = time.perf_counter()
    res_m = simulate(mcat, theta, answers=answers)
    t_m = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_u = simulate(uni, theta, answers=answers)
    t_u = time.perf_counter() - t0
    print(f"### A. 6 skills × 150 items, correlations 0.3–0.7, {n} simulees, SE target 0.3\n")
    print(f"Correlations estimated from 5,000 calibration persons × 30 items per skill in "
          f"{t_corr:.1f} s; largest error against the truth "
          f"{np.abs(r_hat - r).max():.3f}.\n")
    print("| engine | mean items | median | RMSE per skill (mean) | mean SE | RMSE / mean SE "
          "(worst skill) | reached SE ≤ 0.3 on all | wall time |")
    print("|---|---|---|---|---|---|---|---|")
    for name, res, t in (("Proficio McatEngine (D-optimal, MAP+Laplace, estimated R)",
                          res_m, t_m),
                         ("Proficio CatEngine, separate per-skill CATs (MFI, EAP)", res_u, t_u)):
        rmse = np.sqrt(((res.theta_hat - theta) ** 2).mean(axis=0))
        se = res.se.mean(axis=0)
        ratio = rmse / se
        worst = ratio[np.argmax(np.abs(ratio - 1))]
        reached = np.mean(np.all(res.se <= SE_TARGET + 1e-12, axis=1))
        print(f"| {name} | {res.test_length.mean():.1f} | {np.median(res.test_length):.0f} | "
              f"{rmse.mean():.3f} ({rmse.min():.3f}–{rmse.max():.3f}) | {se.mean():.3f} | "
              f"{worst:.3f} | {reached:.3f} | {t:.1f} s |")
    red = 1.0 - res_m.test_length.mean() / res_u.test_length.mean()
    print(f"\nLength reduction of the multidimensional test: **{100 * red:.1f} %** "
          f"(target ≥ 20 %).")
    rmse_u = np.sqrt(((res_u.theta_hat - theta) ** 2).mean())
    for target in tighter:
        bp_t = engine.Blueprint(max_items=200, se_target=target)
        res_t = simulate(mcat_engine(bank, bp_t, correlations=r_hat), theta,
                                  answers=answers)
        rmse_t = np.sqrt(((res_t.theta_hat - theta) ** 2).mean())
        print(f"\nMcatEngine at SE target {target}: {res_t.test_length.mean():.1f} items "
              f"({100 * (1 - res_t.test_length.mean() / res_u.test_length.mean()):.1f} % fewer"
              f" than the per-skill CATs at 0.3), RMSE {rmse_t:.3f} vs {rmse_u:.3f}.")
    if not reference:
        return
    # the same at higher correlations, for reference
    r8 = np.full((k, k), 0.8)
    np.fill_diagonal(r8, 1.0)
    theta8 = g.multivariate_normal(np.zeros(k), r8, size=n)
    ans8 = draw_answers(uni, theta8, g)
    res8 = simulate(mcat_engine(bank, bp, correlations=r8), theta8, answers=ans8)
    uni8 = simulate(uni, theta8, answers=ans8)
    rm8 = np.sqrt(((res8.theta_hat - theta8) ** 2).mean())
    ru8 = np.sqrt(((uni8.theta_hat - theta8) ** 2).mean())
    print(f"\nFor reference, all correlations 0.8 (true R used): {res8.test_length.mean():.1f} "
          f"vs {uni8.test_length.mean():.1f} items "
          f"({100 * (1 - res8.test_length.mean() / uni8.test_length.mean()):.1f} % fewer), "
          f"RMSE {rm8:.3f} vs {ru8:.3f}.\n")


def replications(n: int, seed: int, reps: int) -> None:
    """Study A's comparison repeated on fresh simulees (bank, R and R̂ fixed): how stable are
    the length reduction and the RMSE ratio?"""
    k = 6
    bank = make_bank(k, 150, seed)
    skills = tuple(f"s{j}" for j in range(k))
    r = spread_correlations(k, 0.3, 0.7, seed)
    bp = engine.Blueprint(max_items=200, se_target=SE_TARGET)
    uni = engine.CatEngine(bank, bp)
    mcat = mcat_engine(bank, bp, correlations=r)
    print(f"### A'. Replications: {reps} × {n} fresh simulees, true R, SE target 0.3\n")
    print("| replication | items MCAT | items per-skill CATs | reduction | RMSE MCAT | RMSE "
          "per-skill | RMSE ratio |")
    print("|---|---|---|---|---|---|---|")
    for rep in range(reps):
        g = np.random.default_rng(seed + 100 + rep)
        theta = g.multivariate_normal(np.zeros(k), r, size=n)
        answers = simulate_answers(bank, skills, theta, g)
        res_m = simulate(mcat, theta, answers=answers)
        res_u = simulate(uni, theta, answers=answers)
        lm, lu = res_m.test_length.mean(), res_u.test_length.mean()
        rm = np.sqrt(((res_m.theta_hat - theta) ** 2).mean())
        ru = np.sqrt(((res_u.theta_hat - theta) ** 2).mean())
        print(f"| {rep + 1} | {lm:.1f} | {lu:.1f} | {100 * (1 - lm / lu):.1f} % | {rm:.3f} | "
              f"{ru:.3f} | {rm / ru:.3f} |")
    print()


def study_b(n: int, seed: int) -> None:
    k, per, max_items = 8, 125, 40
    bank = make_bank(k, per, seed + 7)
    skills = tuple(f"s{j}" for j in range(k))
    r = np.full((k, k), 0.5)
    np.fill_diagonal(r, 1.0)
    g = np.random.default_rng(seed + 8)
    theta = g.multivariate_normal(np.zeros(k), r, size=n)
    answers = simulate_answers(bank, skills, theta, g)
    eng = mcat_engine(bank, engine.Blueprint(max_items=max_items, se_target=SE_TARGET),
                     correlations=r)
    steps = []
    mirt_steps = []
    try:
        peer = mirt_engine(bank, skills, r, max_items)
    except Exception as exc:  # the peer is optional: report, do not fail the benchmark
        peer = None
        print(f"(mirt MCATEngine unavailable: {type(exc).__name__}: {exc})\n")
    for p in range(n):
        state = eng.start(seed=p)
        while state.stop_reason is None:
            i = eng.pool.index(state.pending)
            t0 = time.perf_counter()
            state = eng.record(state, state.pending, int(answers[p, i]))
            steps.append(time.perf_counter() - t0)
        if peer is not None and p < MIRT_SESSIONS:
            peer.reset()
            st = peer.get_current_state()
            count = 0
            while not st.is_complete and count < max_items:
                x = int(answers[p, st.next_item])
                t0 = time.perf_counter()
                st = peer.administer_item(x)
                mirt_steps.append(time.perf_counter() - t0)
                count += 1
    s = np.array(steps) * 1000
    print(f"### B. Per-step time: 1,000 items, 8 skills, correlations 0.5, {n} sessions\n")
    print("| engine | steps | median ms/step | mean ms/step | p95 ms/step |")
    print("|---|---|---|---|---|")
    print(f"| Proficio McatEngine.record | {s.size} | {np.median(s):.2f} | {s.mean():.2f} | "
          f"{np.percentile(s, 95):.2f} |")
    if mirt_steps:
        m = np.array(mirt_steps) * 1000
        print(f"| mirt 1.2 MCATEngine.administer_item (D-optimality, MAP) | {m.size} | "
              f"{np.median(m):.2f} | {m.mean():.2f} | {np.percentile(m, 95):.2f} |")
        print(f"\nRatio of medians mirt / Proficio: {np.median(m) / np.median(s):.1f}×. "
              f"Target ≤ 5 ms per step.\n")


def step_figures(n: int, seed: int) -> dict[str, float | str]:
    """Median engine time of one `record` (study B's setup), in ms."""
    k, per, max_items = 8, 125, 40
    bank = make_bank(k, per, seed + 7)
    skills = tuple(f"s{j}" for j in range(k))
    r = np.full((k, k), 0.5)
    np.fill_diagonal(r, 1.0)
    g = np.random.default_rng(seed + 8)
    theta = g.multivariate_normal(np.zeros(k), r, size=n)
    answers = simulate_answers(bank, skills, theta, g)
    eng = mcat_engine(bank, engine.Blueprint(max_items=max_items, se_target=SE_TARGET), r)
    steps = []
    for p in range(n):
        state = eng.start(seed=p)
        while state.stop_reason is None:
            i = eng.pool.index(state.pending)
            t0 = time.perf_counter()
            state = eng.record(state, state.pending, int(answers[p, i]))
            steps.append(time.perf_counter() - t0)
    return {"engine": os.path.dirname(engine.__file__),
            "mcat_ms": float(np.median(steps)) * 1e3, "mcat_mean_ms": float(np.mean(steps)) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulees", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=100, help="study B sessions")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--tighter", type=float, nargs="*", default=[],
                    help="also run the multidimensional test at these SE targets (equal RMSE)")
    ap.add_argument("--only-a", action="store_true", help="study A only, without the ρ = 0.8 "
                    "reference")
    ap.add_argument("--replications", type=int, default=0,
                    help="only run this many replications of study A (fresh simulees)")
    ap.add_argument("--compare", metavar="REV", nargs="?", const=bench_cat.PREVIOUS,
                    help="only study B's step time, side by side with commit REV")
    ap.add_argument("--rounds", type=int, default=3, help="--compare: alternating rounds")
    ap.add_argument("--figures-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.figures_json:
        print(json.dumps(step_figures(args.sessions, args.seed)))
        return
    if args.compare:
        print(f"1,000 items, 8 skills, correlations 0.5, {args.sessions} sessions of up to 40 "
              f"items (load average at start: {os.getloadavg()[0]:.1f})")
        figs = bench_cat.side_by_side(__file__, args.compare, args.rounds,
                                      ["--sessions", str(args.sessions)])
        bench_cat.print_side_by_side(figs, {"mcat_ms": "MCAT step (`record`), median ms",
                                            "mcat_mean_ms": "MCAT step, mean ms"}, args.compare)
        return
    if args.replications:
        print("Machine: shared 2-core box (other engineers' jobs running); threads pinned to "
              "1.\n")
        replications(args.simulees, args.seed, args.replications)
        return
    print("Machine: shared 2-core box (other engineers' jobs running); threads pinned to 1.\n")
    if not args.only_a:
        study_b(args.sessions, args.seed)
    study_a(args.simulees, args.seed, tuple(args.tighter), reference=not args.only_a)


if __name__ == "__main__":
    main()
