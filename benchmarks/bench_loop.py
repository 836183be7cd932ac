"""Recalibration loop (issue 4): accuracy studies and speed against the Python ``mirt`` package.

    .venv/bin/python benchmarks/bench_loop.py [--reps 20] [--quick]

Runs, on the same simulated data in one process:

1. S-X² item fit: power against 3PL (c = 0.25) and non-monotone items and the type I rate of
   fitting items at n = 2,000 under a 2PL calibration (Proficio's `MMLCalibrator`); agreement
   of S-X² with mirt's ``compute_itemfit`` on the same parameters, and the time ratio; the
   sparse-data (rest-posterior) statistic's type I rate on 12-of-30 item CAT-like data.
2. Mantel–Haenszel DIF: classification of 0.5-logit uniform DIF and of DIF-free items, on
   complete forms and on sparse data.
3. Linking: (A, B) recovery of all four methods from two separate MML calibrations of 20 common
   items (n = 1,000 each), and Stocking–Lord/Haebara agreement and time against mirt's ``link``.
4. Online calibration: 20 pretest items with 300 responses each collected inside simulated CATs;
   RMSE of a and b for MEM and Method A, against mirt's ``fixed_item_calibration`` on the same
   responses.

Threads are pinned to one before numpy loads; the machine is shared, so times are noisy.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import irt  # noqa: E402
from calibration.dif import dif  # noqa: E402
from calibration.fit import item_fit, s_x2  # noqa: E402
from calibration.linking import METHODS, LinkingTransform, link  # noqa: E402
from calibration.mml import MMLCalibrator  # noqa: E402
from calibration.online import calibrate_pretest  # noqa: E402
from calibration.results import ItemSpec  # noqa: E402


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def section(title: str) -> None:
    print(f"\n## {title}\n")


# ------------------------------------------------------------------ 1. item fit


def study_fit(reps: int) -> None:
    section(f"S-X² power and type I rate (n = 2,000, 30 items, 2PL calibration, {reps} reps)")
    designs = {3: ("3PL a=2.5 b=1.0 c=.25", 2.5, 1.0), 11: ("3PL a=2.5 b=1.5 c=.25", 2.5, 1.5),
               19: ("3PL a=1.7 b=0.5 c=.25", 1.7, 0.5), 27: ("3PL a=1.7 b=1.0 c=.25", 1.7, 1.0),
               23: ("3PL a=1.0 b=0.0 c=.25", 1.0, 0.0)}
    bump = 7
    pvals = []
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        true = irt.generate_items(30, "2pl", rng)
        a, b, c = true.a.copy(), true.b.copy(), np.zeros(30)
        for k, (_, ak, bk) in designs.items():
            a[k], b[k], c[k] = ak, bk, 0.25
        gen = irt.Bank.dichotomous(a, b, c=c)
        theta = rng.normal(size=2000)
        x = irt.simulate_responses(theta, gen, rng)
        x[:, bump] = (rng.random(2000) < 0.15 + 0.7 * np.exp(-(theta**2) / 0.5)).astype(int)
        fitted = MMLCalibrator("2pl", standard_errors=False).fit(x).items_
        pvals.append(item_fit(irt.SparseResponses.from_dense(x), fitted).p_value)
    p = np.array(pvals)
    print("| item | flagged at p < .01 |\n|---|---|")
    for k, (name, _, _) in designs.items():
        print(f"| {name} | {np.mean(p[:, k] < 0.01):.2f} |")
    print(f"| non-monotone (peak at θ = 0) | {np.mean(p[:, bump] < 0.01):.2f} |")
    clean = [k for k in range(30) if k not in designs and k != bump]
    print(f"| 24 fitting 2PL items | {np.mean(p[:, clean] < 0.01):.3f} "
          f"(at .05: {np.mean(p[:, clean] < 0.05):.3f}) |")

    section("S-X² agreement and speed against mirt (same parameters, 2,000 × 30, 61 nodes)")
    try:
        import mirt
        from mirt.diagnostics.itemfit import compute_itemfit
    except ImportError:
        print("mirt not installed: skipped")
        return
    rng = np.random.default_rng(5)
    bank = irt.generate_items(30, "2pl", rng)
    x = irt.simulate_responses(rng.normal(size=2000), bank, rng)
    res = mirt.fit_mirt(x, "2PL", verbose=False, compute_standard_errors=False)
    ours_bank = irt.Bank.dichotomous(np.asarray(res.model.discrimination).ravel(),
                                     np.asarray(res.model.difficulty).ravel())
    grid = irt.normal_grid(61)
    data = irt.SparseResponses.from_dense(x)
    t_ours, (stat, df, _) = best_of(lambda: s_x2(data, ours_bank, np.arange(30), quadrature=grid))
    t_theirs, theirs = best_of(lambda: compute_itemfit(
        res.model, x, ["S_X2"], quadrature_points=grid.nodes, quadrature_weights=grid.weights))
    diff = np.max(np.abs(stat - np.asarray(theirs["S_X2"])))
    print(f"max |S-X² Proficio − mirt| = {diff:.2e}; df equal: "
          f"{bool(np.all(df == np.asarray(theirs['df'])))}")
    print(f"time: Proficio {t_ours * 1e3:.0f} ms, mirt {t_theirs * 1e3:.0f} ms, "
          f"mirt / Proficio = {t_theirs / t_ours:.1f}×")

    section(f"Sparse-data fit (rest-posterior θ groups), 3,000 persons × 12 of 30 items, "
            f"{max(reps // 4, 2)} reps")
    rates = []
    for r in range(max(reps // 4, 2)):
        rng = np.random.default_rng(2000 + r)
        bank = irt.generate_items(30, "2pl", rng)
        sp = irt.simulate_sparse_responses(rng.normal(size=3000), bank, 12, rng)
        fitted = MMLCalibrator("2pl", standard_errors=False).fit(sp).items_
        rates.append(item_fit(sp, fitted).p_value)
    rp = np.concatenate(rates)
    print(f"type I rate at .05: {np.mean(rp < 0.05):.3f}, at .01: {np.mean(rp < 0.01):.3f}, "
          f"mean p {np.mean(rp):.3f}")


# ------------------------------------------------------------------ 2. DIF


def study_dif(reps: int) -> None:
    section(f"Mantel–Haenszel DIF (2 × 2,000 persons, 30 2PL items, 3 with 0.5-logit uniform "
            f"DIF at a = 1, focal mean −0.5; {reps} reps)")
    dif_items = [2, 9, 17]
    out: dict[str, list] = {f"{d}, {m}": [] for d in ("complete", "sparse 15/30")
                            for m in ("purified matching", "one-stage matching")}
    for r in range(reps):
        rng = np.random.default_rng(3000 + r)
        base = irt.generate_items(30, "2pl", rng)
        a, b = base.a.copy(), base.b.copy()
        a[dif_items] = 1.0
        b[dif_items] = rng.uniform(-1, 1, 3)
        bf = b.copy()
        bf[dif_items] += 0.5
        ref, foc = irt.Bank.dichotomous(a, b), irt.Bank.dichotomous(a, bf)
        tr, tf = rng.normal(0, 1, 2000), rng.normal(-0.5, 1, 2000)
        group = np.array(["r"] * 2000 + ["f"] * 2000)
        dense = irt.SparseResponses.from_dense(np.vstack([irt.simulate_responses(tr, ref, rng),
                                                          irt.simulate_responses(tf, foc, rng)]))
        s_r = irt.simulate_sparse_responses(tr, ref, 15, rng)
        s_f = irt.simulate_sparse_responses(tf, foc, 15, rng)
        sparse = irt.SparseResponses(np.r_[s_r.person, s_f.person + 2000],
                                     np.r_[s_r.item, s_f.item], np.r_[s_r.response,
                                                                      s_f.response], 4000, 30)
        for name, data in (("complete", dense), ("sparse 15/30", sparse)):
            for label, purify in (("purified matching", True), ("one-stage matching", False)):
                res = dif(data, ref, group, reference="r", focal="f", purify=purify)
                cls = np.array(res.ets_class)
                clean = np.setdiff1d(np.arange(30), dif_items)
                out[f"{name}, {label}"].append((np.mean(np.isin(cls[dif_items], ["B", "C"])),
                                                np.mean(cls[clean] == "A"),
                                                np.mean(res.mh_delta[dif_items])))
    print("| data | DIF items flagged B or C | DIF-free items classed A | mean Δ_MH of DIF items "
          "(true ≈ −1.18) |\n|---|---|---|---|")
    for name, rows in out.items():
        m = np.mean(rows, axis=0)
        print(f"| {name} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.2f} |")


# ------------------------------------------------------------------ 3. linking


def _mirt_2pl(bank: irt.Bank):
    from mirt.models.dichotomous import TwoParameterLogistic

    model = TwoParameterLogistic(len(bank))
    model.set_parameters(discrimination=bank.a.copy(), difficulty=bank.b.copy())
    return model


def study_linking(reps: int) -> None:
    section(f"Linking recovery: two separate MML calibrations (n = 2,000 each) of 20 common "
            f"2PL items, θ_base = 1.25 θ_new − 0.6 ({reps} reps)")
    A, B = 1.25, -0.6
    errs: dict[str, list] = {m: [] for m in METHODS}
    for r in range(reps):
        rng = np.random.default_rng(4000 + r)
        base_true = irt.generate_items(20, "2pl", rng)
        new_true = LinkingTransform(A, B).inverse().apply(base_true)
        tb, tn = rng.normal(size=2000), rng.normal(size=2000)
        xb = irt.simulate_responses(tb, base_true, rng)
        # the new sample is N(0, 1) on its own scale: a different population on the base scale
        xn = irt.simulate_responses(tn, new_true, rng)
        # each calibration puts its own sample at mean 0, SD 1, so the transformation between
        # the two calibrated scales is (A, B) adjusted by the samples' moments
        a_s = A * tn.std() / tb.std()
        b_s = (A * tn.mean() + B - tb.mean()) / tb.std()
        cal_b = MMLCalibrator("2pl", standard_errors=False).fit(xb).items_
        cal_n = MMLCalibrator("2pl", standard_errors=False).fit(xn).items_
        for m in METHODS:
            res = link(cal_n, cal_b, m)
            errs[m].append((res.A - a_s, res.B - b_s))
    print("| method | RMSE A | RMSE B | max abs. error A | max abs. error B |\n"
          "|---|---|---|---|---|")
    for m, e in errs.items():
        e = np.asarray(e)
        rmse = np.sqrt(np.mean(e**2, axis=0))
        mx = np.max(np.abs(e), axis=0)
        print(f"| {m} | {rmse[0]:.3f} | {rmse[1]:.3f} | {mx[0]:.3f} | {mx[1]:.3f} |")
    print("\nErrors are against the transformation between the two *sample* scales "
          "(A·s_new/s_base, (A·m_new + B − m_base)/s_base with the samples' θ means m and SDs "
          "s), since each MML calibration fixes its own sample at N(0, 1).")

    section("Linking agreement and speed against mirt's link (same parameters, 40 common items)")
    try:
        import mirt
    except ImportError:
        print("mirt not installed: skipped")
        return
    rng = np.random.default_rng(9)
    base = irt.generate_items(40, "2pl", rng)
    noisy = irt.Bank.dichotomous(base.a * np.exp(rng.normal(0, 0.05, 40)),
                                 base.b + rng.normal(0, 0.08, 40))
    new = LinkingTransform(A, B).inverse().apply(noisy)
    mb, mn = _mirt_2pl(base), _mirt_2pl(new)
    idx = list(range(40))
    print("| method | Proficio (A, B) | mirt (A, B) | Proficio time | mirt time | "
          "mirt / Proficio |\n|---|---|---|---|---|---|")
    for ours_m, their_m in (("mean-sigma", "mean_sigma"), ("mean-mean", "mean_mean"),
                            ("haebara", "haebara"), ("stocking-lord", "stocking_lord")):
        grid = irt.normal_grid(61, half_width=4.0)
        t_o, ours = best_of(lambda m=ours_m, g=grid: link(new, base, m, grid=g))
        t_t, theirs = best_of(lambda m=their_m: mirt.link(mb, mn, idx, idx, method=m,
                                                           compute_diagnostics=False))
        print(f"| {ours_m} | ({ours.A:.4f}, {ours.B:+.4f}) | ({theirs.constants.A:.4f}, "
              f"{theirs.constants.B:+.4f}) | {t_o * 1e3:.1f} ms | {t_t * 1e3:.1f} ms | "
              f"{t_t / t_o:.1f}× |")
    print("\nFor this table Proficio uses mirt's default criterion grid (61 points on ±4 with "
          "N(0, 1) density weights) so both minimize the same function.")


# ------------------------------------------------------------------ 4. online calibration


def simulate_cat_with_pretest(operational: irt.Bank, pretest: irt.Bank, theta: np.ndarray,
                              rng: np.random.Generator, length: int = 20,
                              per_person: int = 2) -> irt.SparseResponses:
    """Maximum-information CAT with EAP (fixed length) over the operational items, plus
    ``per_person`` spiralled, unscored pretest items per candidate."""
    n = theta.size
    grid = irt.normal_grid(61)
    log_post = np.tile(grid.log_weights, (n, 1))
    logp = np.log(irt.category_probabilities(grid.nodes, operational))
    given = np.zeros((n, len(operational)), dtype=bool)
    person, item, resp = [], [], []
    est = np.zeros(n)
    rows = np.arange(n)
    for _ in range(length):
        info = np.where(given, -np.inf, irt.item_information(est, operational))
        nxt = np.argmax(info, axis=1)
        given[rows, nxt] = True
        p = irt.category_probabilities(theta, operational)[rows, nxt, 1]
        x = (rng.random(n) < p).astype(np.int64)
        log_post += logp[:, nxt, :][:, rows, x].T
        post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        est = post @ grid.nodes / post.sum(axis=1)
        person.append(rows)
        item.append(nxt)
        resp.append(x)
    for j in range(per_person):
        k = (per_person * rows + j) % len(pretest)
        p = irt.category_probabilities(theta, pretest)[rows, k, 1]
        person.append(rows)
        item.append(len(operational) + k)
        resp.append((rng.random(n) < p).astype(np.int64))
    return irt.SparseResponses(np.concatenate(person), np.concatenate(item),
                               np.concatenate(resp), n, len(operational) + len(pretest))


def study_online(reps: int) -> None:
    section(f"Online calibration: 150 operational 2PL items, 20-item CATs, 20 pretest items × "
            f"300 responses, candidates N(0.3, 1.1²) on the operational scale ({reps} reps)")
    try:
        import mirt
        from mirt.models.dichotomous import TwoParameterLogistic
    except ImportError:
        mirt = None
    rows: dict[str, list] = {"MEM": [], "Method A": [], "mirt FIPC": []}
    times: dict[str, list] = {k: [] for k in rows}
    for r in range(reps):
        rng = np.random.default_rng(5000 + r)
        op = irt.generate_items(150, "2pl", rng, a_logsd=0.3, b_sd=1.2)
        pre = irt.Bank.dichotomous(np.exp(rng.normal(0, 0.25, 20)), rng.uniform(-1.2, 1.8, 20),
                                   item_ids=[f"p{k:04d}" for k in range(1, 21)])
        data = simulate_cat_with_pretest(op, pre, rng.normal(0.3, 1.1, 3000), rng)
        specs = [ItemSpec(i, "2pl") for i in pre.item_ids]
        for name, method in (("MEM", "mem"), ("Method A", "method-a")):
            t0 = time.perf_counter()
            res = calibrate_pretest(data, op, specs, method=method)
            times[name].append(time.perf_counter() - t0)
            rows[name].append((np.sqrt(np.mean((res.items.a - pre.a) ** 2)),
                               np.sqrt(np.mean((res.items.b - pre.b) ** 2)),
                               np.mean(res.promotable)))
        if mirt is not None:
            dense = np.full((3000, 170), np.nan)
            dense[data.person, data.item] = data.response
            model = TwoParameterLogistic(170)
            anchors = TwoParameterLogistic(150)
            anchors.set_parameters(discrimination=op.a.copy(), difficulty=op.b.copy())
            t0 = time.perf_counter()
            fr = mirt.fixed_item_calibration(dense, model, list(range(150)), anchors,
                                             n_quadpts=41, compute_standard_errors=True)
            times["mirt FIPC"].append(time.perf_counter() - t0)
            m = fr.fit_result.model
            ma = np.asarray(m.discrimination).ravel()[150:]
            mb = np.asarray(m.difficulty).ravel()[150:]
            rows["mirt FIPC"].append((np.sqrt(np.mean((ma - pre.a) ** 2)),
                                      np.sqrt(np.mean((mb - pre.b) ** 2)), np.nan))
    print("| method | mean RMSE a | mean RMSE b | reps with both ≤ 0.2 | share promotable | "
          "mean time |\n|---|---|---|---|---|---|")
    for name, vals in rows.items():
        if not vals:
            continue
        v = np.asarray(vals)
        ok = np.mean((v[:, 0] <= 0.2) & (v[:, 1] <= 0.2))
        prom = "" if np.isnan(v[:, 2]).all() else f"{np.mean(v[:, 2]):.2f}"
        print(f"| {name} | {np.mean(v[:, 0]):.3f} | {np.mean(v[:, 1]):.3f} | {ok:.2f} | "
              f"{prom} | {np.mean(times[name]):.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--only", choices=("fit", "dif", "linking", "online"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"# Recalibration loop benchmark ({time.strftime('%Y-%m-%d')}, one BLAS thread, "
          f"shared 2-core machine)")
    studies = {"fit": study_fit, "dif": study_dif, "linking": study_linking,
               "online": study_online}
    for name, fn in studies.items():
        if args.only in (None, name):
            fn(args.reps)


if __name__ == "__main__":
    main()
