"""CAT engine benchmark: Proficio against catsim and PyPI ``mirt`` on identical pre-drawn answers.

Setup (issue 5): a 500-item 2PL bank (a ~ |N(1.2, 0.25)|, b ~ N(0, 1): the distributions of
Barrada et al. 2010 that catsim's generator uses), 1,000 simulees θ ~ N(0, 1), start θ = 0,
maximum Fisher information, stop at SE ≤ 0.3 or 40 items. Every engine answers from the same
answer matrix (simulee × item, drawn once from the model), except mirt's Rust batch simulator,
which draws its own responses (it takes no answer matrix).

Engines and what is timed per step (one response: update + stop check + select):

* Proficio ``CatEngine.record`` (live, immutable state; EAP on 81 nodes, incremental);
* Proficio ``engine.simulation.simulate`` (all simulees together): total time / items given;
* catsim 0.21 (``NumericalSearchEstimator`` ML with Dodd's heuristic, ``MinErrorStopper``,
  ``MaxInfoSelector``), driven item by item;
* mirt ``CATEngine`` (EAP, its default 21 Gauss–Hermite points), ``administer_item`` per step;
* mirt ``run_batch_simulation`` (Rust): total time / items given.

Also: the random fixed form of equal RMSE (averaged over several random forms), the live speed
with a 5,000-item bank, and exposure control (randomesque k = 5; Sympson–Hetter r_max = 0.25)
with its length cost.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python
benchmarks/bench_cat.py [--quick]``. The script prints (it is a script, not library code).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import engine  # noqa: E402
import irt  # noqa: E402
from engine.simulation import (  # noqa: E402
    simulate,
    simulate_fixed_form,
    summarize,
    tune_sympson_hetter,
)

SE_TARGET, MAX_ITEMS = 0.3, 40


def make_bank(n_items: int, seed: int) -> irt.Bank:
    g = np.random.default_rng(seed)
    return irt.Bank.dichotomous(np.abs(g.normal(1.2, 0.25, n_items)), g.normal(0, 1, n_items))


def rmse(est, true) -> float:
    return float(np.sqrt(np.mean((np.asarray(est) - np.asarray(true)) ** 2)))


def row(name: str, lengths, est, true, step_us: float, note: str = "") -> dict:
    return {"engine": name, "length": float(np.mean(lengths)), "rmse": rmse(est, true),
            "us": step_us, "note": note}


def run_proficio_live(bank, theta, answers):
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS))
    steps, est, lengths, items = [], [], [], []
    for p in range(len(theta)):
        state = eng.start(seed=engine.derive_seed(0, p))
        ans = answers[p]
        index = eng.pool.index
        while state.stop_reason is None:
            item = state.pending
            x = int(ans[index(item)])
            t0 = time.perf_counter()
            state = eng.record(state, item, x)
            steps.append(time.perf_counter() - t0)
        e = eng.estimates(state)["default"]
        est.append(e.theta)
        lengths.append(e.n_items)
        items.append([index(ev.item_id) for ev in state.events])
    return np.array(steps), np.array(est), np.array(lengths), items


def run_proficio_batch(bank, theta, answers, exposure=None):
    bp = engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS,
                          exposure=exposure or engine.NoExposureControl())
    eng = engine.CatEngine(bank, bp)
    simulate(eng, theta[:50], answers=answers[:50])  # warm the compiled-bank cache
    t0 = time.perf_counter()
    res = simulate(eng, theta, answers=answers)
    dt = time.perf_counter() - t0
    return res, dt


def run_catsim(bank, theta, answers):
    from catsim.estimation.numerical import NumericalSearchEstimator
    from catsim.item_bank import ItemBank
    from catsim.selection.selection import MaxInfoSelector
    from catsim.stopping.stopping import MinErrorStopper

    items = np.column_stack([bank.a, bank.b, np.zeros(len(bank)), np.ones(len(bank))])
    ib = ItemBank(items)
    est_ = NumericalSearchEstimator(dodd=True)
    sel = MaxInfoSelector()
    stop = MinErrorStopper(SE_TARGET, max_items=MAX_ITEMS)
    steps, est, lengths = [], [], []
    for p in range(len(theta)):
        administered: list[int] = []
        responses: list[bool] = []
        t_hat = 0.0
        item = sel.select(item_bank=ib, administered_items=administered, est_theta=t_hat)
        while True:
            administered.append(item)
            responses.append(bool(answers[p, item]))
            t0 = time.perf_counter()
            t_hat = est_.estimate(item_bank=ib, administered_items=administered,
                                  response_vector=responses, est_theta=t_hat)
            done = stop.stop(administered_items=ib.get_items(administered), theta=t_hat)
            if not done:
                item = sel.select(item_bank=ib, administered_items=administered,
                                  est_theta=t_hat)
            steps.append(time.perf_counter() - t0)
            if done:
                break
        est.append(t_hat)
        lengths.append(len(administered))
    return np.array(steps), np.array(est), np.array(lengths)


def mirt_model(bank):
    from mirt.models.dichotomous import TwoParameterLogistic

    m = TwoParameterLogistic(n_items=len(bank))
    m.set_parameters(discrimination=bank.a.copy(), difficulty=bank.b.copy())
    # mirt has no public constructor for known parameters; CATEngine requires a fitted model
    m._is_fitted = True
    return m


def run_mirt_engine(bank, theta, answers):
    from mirt.cat import CATEngine

    cat = CATEngine(mirt_model(bank), se_threshold=SE_TARGET, max_items=MAX_ITEMS, seed=0)
    steps, est, lengths = [], [], []
    for p in range(len(theta)):
        cat.reset()
        state = cat.get_current_state()
        while not state.is_complete:
            x = int(answers[p, state.next_item])
            t0 = time.perf_counter()
            state = cat.administer_item(x)
            steps.append(time.perf_counter() - t0)
        est.append(state.theta)
        lengths.append(state.n_items)
    return np.array(steps), np.array(est), np.array(lengths)


def run_mirt_rust(bank, theta):
    from mirt.cat import CATEngine

    cat = CATEngine(mirt_model(bank), se_threshold=SE_TARGET, max_items=MAX_ITEMS, seed=0)
    cat.run_batch_simulation(theta[:50])  # warm-up
    t0 = time.perf_counter()
    res = cat.run_batch_simulation(theta)
    dt = time.perf_counter() - t0
    lengths = np.array([r.n_items_administered for r in res])
    est = np.array([r.theta for r in res])
    return dt, est, lengths


def fixed_form_curve(bank, theta, answers, lengths, n_forms):
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=None, max_items=max(lengths)))
    out = {}
    for L in lengths:
        vals = [summarize(simulate_fixed_form(eng, theta, L, answers=answers, rng=100 + f))
                .skills[0].rmse for f in range(n_forms)]
        out[L] = float(np.mean(vals))
    return out


def equal_rmse_length(curve: dict[int, float], target: float) -> float:
    """Length where the fixed-form RMSE curve crosses ``target`` (linear interpolation)."""
    ls = sorted(curve)
    for lo, hi in itertools.pairwise(ls):
        if curve[lo] >= target >= curve[hi]:
            return lo + (curve[lo] - target) / (curve[lo] - curve[hi]) * (hi - lo)
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200 simulees, skip slow peers")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    n = 200 if args.quick else args.n
    warnings.simplefilter("ignore")
    bank = make_bank(500, 2026)
    g = np.random.default_rng(5)
    theta = g.normal(size=n)
    answers = irt.simulate_responses(theta, bank, g).astype(np.int8)
    rows = []
    print(f"500-item 2PL bank, {n} simulees, start 0, MFI, SE <= {SE_TARGET} or {MAX_ITEMS} "
          f"items; identical pre-drawn answers; threads pinned to 1; shared 2-core machine")

    steps, est_live, len_live, items_live = run_proficio_live(bank, theta, answers)
    rows.append(row("Proficio CatEngine (live, EAP 81 nodes)", len_live, est_live, theta,
                    float(np.median(steps) * 1e6), f"mean {np.mean(steps) * 1e6:.1f} µs"))
    res, dt = run_proficio_batch(bank, theta, answers)
    same = (np.array_equal(res.theta_hat[:, 0], est_live)
            and all(list(res.items[p, : len(items_live[p])]) == items_live[p]
                    for p in range(n)))
    rows.append(row("Proficio batch simulate", res.n_items[:, 0], res.theta_hat[:, 0], theta,
                    dt / res.n_items.sum() * 1e6,
                    f"per item all-in; identical to live: {same}"))
    if not args.quick:
        steps, est, lens = run_catsim(bank, theta, answers)
        rows.append(row("catsim 0.21 (ML + Dodd)", lens, est, theta,
                        float(np.median(steps) * 1e6), f"mean {np.mean(steps) * 1e6:.0f} µs"))
        steps, est, lens = run_mirt_engine(bank, theta, answers)
        rows.append(row("mirt CATEngine (EAP, 21 GH points)", lens, est, theta,
                        float(np.median(steps) * 1e6), f"mean {np.mean(steps) * 1e6:.0f} µs"))
    dt, est, lens = run_mirt_rust(bank, theta)
    rows.append(row("mirt Rust batch (own responses)", lens, est, theta,
                    dt / lens.sum() * 1e6, "per item all-in"))

    print("\n| engine | mean length | θ RMSE | µs per step | note |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['length']:.2f} | {r['rmse']:.3f} | {r['us']:.1f} | "
              f"{r['note']} |")
    live = rows[0]
    for r in rows[2:]:
        print(f"speed ratio {r['engine']} / Proficio live: {r['us'] / live['us']:.1f}x")

    # 5,000-item bank: live step time
    big = make_bank(5000, 7)
    n_big = min(n, 200)
    ans_big = irt.simulate_responses(theta[:n_big], big, g).astype(np.int8)
    steps_big, _, len_big, _ = run_proficio_live(big, theta[:n_big], ans_big)
    print(f"\n5,000-item bank, {n_big} simulees: live step median "
          f"{np.median(steps_big) * 1e6:.1f} µs (mean {np.mean(steps_big) * 1e6:.1f}), "
          f"mean length {np.mean(len_big):.2f}")

    # fixed form of equal RMSE
    n_forms = 3 if args.quick else 10
    curve = fixed_form_curve(bank, theta, answers, [20, 30, 40, 45, 50, 55, 60, 70, 80],
                             n_forms)
    target = live["rmse"]
    L_eq = equal_rmse_length(curve, target)
    print(f"\nrandom fixed forms (mean RMSE over {n_forms} forms): "
          + ", ".join(f"{L}: {v:.3f}" for L, v in curve.items()))
    print(f"fixed form of equal RMSE ({target:.3f}): {L_eq:.1f} items; CAT/fixed length ratio "
          f"{live['length'] / L_eq:.3f}")

    # exposure control
    base = summarize(res)
    print(f"\nexposure: no control: max {base.max_exposure:.3f}, length "
          f"{base.mean_length:.2f}, RMSE {base.skills[0].rmse:.3f}")
    r5, _ = run_proficio_batch(bank, theta, answers, engine.Randomesque(k=5))
    s5 = summarize(r5)
    print(f"randomesque k=5: max exposure {s5.max_exposure:.3f}, length {s5.mean_length:.2f} "
          f"(+{100 * (s5.mean_length / base.mean_length - 1):.1f} %), RMSE "
          f"{s5.skills[0].rmse:.3f}, overlap {s5.overlap_rate:.3f}")
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS))
    t0 = time.perf_counter()
    tuning = tune_sympson_hetter(eng, lambda gg: gg.normal(size=2000), 0.25, rng=9)
    t_tune = time.perf_counter() - t0
    rsh, _ = run_proficio_batch(bank, theta, answers, tuning.control)
    ssh = summarize(rsh)
    check = summarize(simulate(engine.CatEngine(bank, engine.Blueprint(
        se_target=SE_TARGET, max_items=MAX_ITEMS, exposure=tuning.control)),
        np.random.default_rng(11).normal(size=5000), rng=12))
    print(f"Sympson-Hetter r_max=0.25 (tuned in {t_tune:.0f} s, converged {tuning.converged}): "
          f"max exposure {ssh.max_exposure:.3f} on these {n} simulees, "
          f"{check.max_exposure:.3f} on 5,000 fresh simulees; length {ssh.mean_length:.2f} "
          f"(+{100 * (ssh.mean_length / base.mean_length - 1):.1f} %), RMSE "
          f"{ssh.skills[0].rmse:.3f}, overlap {ssh.overlap_rate:.3f}")


if __name__ == "__main__":
    main()
