"""Test-security study (issue 17): plant leaked items and cheating candidates into simulated
adaptive traffic and measure what `calibration.forensics` catches.

Traffic: a 300-item 2PL bank, one skill; candidates arrive in order, each taking a 30-item CAT
(maximum information, randomesque 5) run by Proficio's own engine; response times from the
lognormal model (time intensity β ~ N(3.9, 0.35), i.e. about 50 s; α ~ U(1.5, 2.5); speed SD
0.3). `--months` months of `--per-month` candidates; at the middle month five items (drawn among
items used by ≥ 5 % of candidates) leak: from then on 30 % of candidates know them, answer them
correctly and in half their usual time. The response-time model is calibrated on the pre-leak
traffic; abilities are EAP estimates without the judged item. Each item is monitored over its
answers in arrival order; after an alarm the CUSUM restarts, so false alarms are counted as a
rate per item-month.

Candidate notes: thresholds are chosen on `--train` simulated honest candidates (default 4,000)
at `--target` (default 1 %), then measured on fresh honest candidates, rapid guessers (20 % of
their answers random, in 1–4 s) and candidates with pre-knowledge of 25 % of the bank (those
answered correctly in half the time).

The power of pre-knowledge detection is bounded by `power_bound`: the Neyman–Pearson likelihood
ratio of the simulated alternative (θ and τ integrated out) and an oracle knowing θ and τ.

Per test length (`--lengths`): the same note study — same seed 20261204, hence the same bank
and response-time model, for every length — with CATs of each length; the quoted false-positive
rate of a length is measured on 10,000 fresh honest simulees of that length, and its thresholds
are printed as `web.services.forensics.THRESHOLDS_BY_LENGTH`. `--between` then checks, on
10,000 fresh honest simulees of each length between the studied ones, the share noted at the
thresholds of the studied length just below and just above against the rates those entries
quote (`between_study`).

    .venv/bin/python benchmarks/bench_forensics.py [--replications 10] [--months 12]
    .venv/bin/python benchmarks/bench_forensics.py --notes-only   # note study + bound, ~30 s
    .venv/bin/python benchmarks/bench_forensics.py --lengths 10,15,20,25,30,40,50,60,80,100 \
        --between 12,17,22,27,35,45,55,70,90                      # ~6 min
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

import engine
import irt
from calibration.forensics import (
    IntegrityThresholds,
    choose_thresholds,
    integrity_evidence,
    integrity_notes,
    monitor_item,
)
from engine.simulation import simulate
from irt.person_fit import lz_star
from irt.response_time import fit_lognormal, loo_time_residuals

N_ITEMS, TEST_LENGTH, LEAKED = 300, 30, 5
#: Items need this many times before their time parameters are used (fewer: no time evidence).
RT_MIN_RESPONSES = 30
GRID = np.linspace(-5, 5, 81)


@dataclass
class Traffic:
    person: NDArray[np.int64]
    item: NDArray[np.int64]
    correct: NDArray[np.float64]
    seconds: NDArray[np.float64]


def make_bank(rng: np.random.Generator) -> tuple[irt.Bank, NDArray, NDArray]:
    a = np.exp(rng.normal(0.1, 0.25, N_ITEMS))
    b = rng.normal(0.0, 1.0, N_ITEMS)
    bank = irt.Bank.from_params(irt.ItemParams(f"IT-{k:03d}", "2pl", a=float(a[k]),
                                               b=float(b[k]), skill="s")
                                for k in range(N_ITEMS))
    return bank, rng.normal(3.9, 0.35, N_ITEMS), rng.uniform(1.5, 2.5, N_ITEMS)


def run_cat(bank: irt.Bank, answers: NDArray, theta: NDArray, seed: int,
            length: int = TEST_LENGTH) -> Traffic:
    bp = engine.Blueprint(se_target=None, min_items=length, max_items=length,
                          exposure=engine.strategies.Randomesque(5), seed=seed)
    res = simulate(engine.CatEngine(bank, bp), theta, answers=answers)
    items = res.items[:, 0, :] if res.items.ndim == 3 else res.items
    person, pos = np.nonzero(items >= 0)
    item = items[person, pos]
    return Traffic(person, item, answers[person, item].astype(float), np.zeros(person.size))


def loo_eap_p(bank: irt.Bank, t: Traffic, n_persons: int) -> NDArray[np.float64]:
    """P(correct) of every answer at the EAP of the person's other answers (N(0, 1) prior)."""
    p_grid = irt.probability(GRID, bank)                       # (nodes, items)
    log_p = np.where(t.correct[:, None] == 1, np.log(p_grid[:, t.item].T),
                     np.log1p(-p_grid[:, t.item].T))           # (answers, nodes)
    total = np.zeros((n_persons, GRID.size))
    np.add.at(total, t.person, log_p)
    loo = total[t.person] - log_p - 0.5 * GRID**2
    loo -= loo.max(axis=1, keepdims=True)
    w = np.exp(loo)
    theta = (w @ GRID) / w.sum(axis=1)
    a, b = bank.a[t.item], bank.b[t.item]
    return 1.0 / (1.0 + np.exp(-a * (theta - b)))


def leak_study(rng: np.random.Generator, months: int, per_month: int) -> dict[str, float]:
    bank, beta, alpha = make_bank(rng)
    n = months * per_month
    leak_at = (months // 2) * per_month
    theta = rng.normal(size=n)
    tau = rng.normal(0, 0.3, n)
    answers = irt.simulate_responses(theta, bank, rng)
    # which items are used enough: a pilot of the same design
    pilot = run_cat(bank, answers[:1000], theta[:1000], seed=99)
    use = np.bincount(pilot.item, minlength=N_ITEMS) / 1000
    leaked = rng.choice(np.flatnonzero(use >= 0.05), LEAKED, replace=False)
    knows = (np.arange(n) >= leak_at) & (rng.random(n) < 0.3)
    answers[np.ix_(knows, leaked)] = 1
    t = run_cat(bank, answers, theta, seed=int(rng.integers(1 << 31)))
    z = rng.standard_normal(t.person.size)
    log_t = beta[t.item] - tau[t.person] + z / alpha[t.item]
    cheat = knows[t.person] & np.isin(t.item, leaked)
    log_t[cheat] += np.log(0.5)
    t.seconds = np.exp(log_t)
    pre = t.person < leak_at
    rt = fit_lognormal(t.person[pre], t.item[pre], t.seconds[pre], n, N_ITEMS,
                       min_responses=RT_MIN_RESPONSES)
    zres = loo_time_residuals(t.person, t.item, t.seconds, rt.beta, rt.alpha, rt.sigma_tau, n)
    p_loo = loo_eap_p(bank, t, n)
    order = np.lexsort((np.arange(t.person.size), t.person))
    delays, false_alarms = [], 0
    for i in range(N_ITEMS):
        rows = order[t.item[order] == i]
        x, p, zz, who = t.correct[rows], p_loo[rows], zres[rows], t.person[rows]
        post0 = int(np.searchsorted(who, leak_at))
        start = 0
        detected = None
        while start < rows.size:
            alarm = monitor_item(f"IT-{i:03d}", x[start:], p[start:], zz[start:])
            if alarm is None:
                break
            at = start + alarm.alarm_index
            if i in leaked and at >= post0 and detected is None:
                detected = at - post0 + 1
                break
            false_alarms += 1
            start = at + 1
        if i in leaked:
            delays.append(np.inf if detected is None else detected)
    clean_item_months = (N_ITEMS - LEAKED) * months + LEAKED * (months // 2)
    d = np.array(delays)
    return {"detected_300": float(np.mean(d <= 300)), "median_delay": float(np.median(d)),
            "false_alarms": false_alarms, "item_months": clean_item_months,
            "rt_beta_rmse": float(np.sqrt(np.nanmean((rt.beta - beta) ** 2))),
            "rt_alpha_rmse": float(np.sqrt(np.nanmean((rt.alpha - alpha) ** 2))),
            "rt_items": int(np.isfinite(rt.beta).sum())}


def candidates(rng: np.random.Generator, bank: irt.Bank, beta: NDArray, alpha: NDArray,
               n: int, kind: str, rt_fit, speed: float = 0.5, length: int = TEST_LENGTH
               ) -> tuple[list, float]:
    theta = rng.normal(size=n)
    tau = rng.normal(0, 0.3, n)
    answers = irt.simulate_responses(theta, bank, rng)
    special = np.zeros((n, N_ITEMS), dtype=bool)
    if kind == "rapid":
        special = rng.random((n, N_ITEMS)) < 0.2
        answers[special] = (rng.random(int(special.sum())) < 0.25).astype(answers.dtype)
    elif kind == "preknowledge":
        special = rng.random((n, N_ITEMS)) < 0.25
        answers[special] = 1
    t = run_cat(bank, answers, theta, seed=int(rng.integers(1 << 31)), length=length)
    log_t = beta[t.item] - tau[t.person] + rng.standard_normal(t.person.size) / alpha[t.item]
    sp = special[t.person, t.item]
    if kind == "rapid":
        log_t[sp] = np.log(rng.uniform(1.0, 4.0, int(sp.sum())))
    elif kind == "preknowledge":
        log_t[sp] += np.log(speed)
    t.seconds = np.exp(log_t)
    p_loo = loo_eap_p(bank, t, n)
    sparse = irt.SparseResponses(t.person, t.item, t.correct.astype(np.int64), n, N_ITEMS)
    est = irt.wle(sparse, bank)
    lz = lz_star(t.person, t.item, t.correct, est.theta, bank, estimator="wle")
    typical = np.exp(rt_fit.beta)
    out = []
    by = np.argsort(t.person, kind="stable")
    bounds = np.searchsorted(t.person[by], np.arange(n + 1))
    for j in range(n):
        r = by[bounds[j]:bounds[j + 1]]
        out.append(integrity_evidence(t.correct[r], p_loo[r], t.seconds[r],
                                      typical[t.item[r]], float(lz[j]),
                                      alpha=rt_fit.alpha[t.item[r]],
                                      sigma_tau=rt_fit.sigma_tau))
    return out, float(np.mean(sp.sum() / max(t.person.size, 1)))


BOUND_THETA = np.linspace(-4, 4, 41)
BOUND_TAU = np.linspace(-1.0, 0.5, 76)


def _log_lrs(x: NDArray, p_grid: NDArray, log_t: NDArray, beta: NDArray, alpha: NDArray,
             sigma_tau: float, p_true: NDArray, tau_true: float, beta_true: NDArray,
             alpha_true: NDArray, share: float = 0.25, s: float = float(np.log(2))
             ) -> tuple[float, float]:
    """Two likelihood ratios of "each item known with probability ``share`` (correct, log time
    − s)" against honesty, for one candidate. *Marginal*: θ ~ N(0, 1) and τ ~ N(0, σ_τ²)
    integrated out (on grids), the calibrated item parameters — with both hypotheses simple,
    the Neyman–Pearson most powerful test of this alternative (adaptive item selection is
    ignorable). *Oracle*: the candidate's true θ, τ and the true item parameters."""
    from scipy.special import logsumexp

    ok = np.isfinite(beta) & np.isfinite(alpha)
    a2 = np.where(ok, alpha, 0.0) ** 2
    e0 = np.where(ok, log_t - beta, 0.0)
    prec = 1.0 / sigma_tau**2
    tau = -np.sum(a2 * e0) / (prec + np.sum(a2)) + BOUND_TAU
    e = e0[None, :] + tau[:, None]
    l_tau = -0.5 * np.sum(a2 * e**2, 1) - 0.5 * prec * tau**2
    p = np.clip(p_grid, 1e-9, 1 - 1e-9)
    l_theta = np.sum(np.where(x == 1, np.log(p), np.log1p(-p)), 1) - 0.5 * BOUND_THETA**2
    time_lr = np.exp(np.clip(-a2 * s * e - 0.5 * a2 * s**2, -50, 50))
    mix = np.sum(np.log(1 - share + share * (x / p)[:, None, :] * time_lr[None]), -1)
    marginal = float(logsumexp(mix + l_theta[:, None] + l_tau[None, :])
                     - logsumexp(l_theta) - logsumexp(l_tau))
    e_true = log_t - beta_true + tau_true
    r = x / p_true * np.exp(-alpha_true**2 * s * e_true - 0.5 * alpha_true**2 * s**2)
    return marginal, float(np.sum(np.log(1 - share + share * r)))


def power_bound(rng: np.random.Generator, n_honest: int = 4000, n_cheat: int = 2000
                ) -> dict[str, float]:
    """Power of the two likelihood ratios of `_log_lrs` against pre-knowledge of 25 % of the
    items answered in half the time, at the 0.6 % (the pre-knowledge note's share of the
    budget) and 1 % levels of their own simulated null (same design as `note_study`)."""
    bank, beta, alpha = make_bank(rng)
    theta = rng.normal(size=3000)
    t = run_cat(bank, irt.simulate_responses(theta, bank, rng), theta, seed=5)
    tau = rng.normal(0, 0.3, 3000)
    t.seconds = np.exp(beta[t.item] - tau[t.person]
                       + rng.standard_normal(t.person.size) / alpha[t.item])
    rt = fit_lognormal(t.person, t.item, t.seconds, 3000, N_ITEMS,
                       min_responses=RT_MIN_RESPONSES)
    p_grid = irt.probability(BOUND_THETA, bank)
    stats = {}
    for kind, n in (("honest", n_honest), ("preknowledge", n_cheat)):
        th = rng.normal(size=n)
        ta = rng.normal(0, 0.3, n)
        answers = irt.simulate_responses(th, bank, rng)
        known = (rng.random((n, N_ITEMS)) < 0.25) if kind == "preknowledge" \
            else np.zeros((n, N_ITEMS), dtype=bool)
        answers[known] = 1
        c = run_cat(bank, answers, th, seed=int(rng.integers(1 << 31)))
        log_t = beta[c.item] - ta[c.person] + rng.standard_normal(c.person.size) / alpha[c.item]
        log_t[known[c.person, c.item]] += np.log(0.5)
        p_true = 1 / (1 + np.exp(-bank.a[c.item] * (th[c.person] - bank.b[c.item])))
        by = np.argsort(c.person, kind="stable")
        bounds = np.searchsorted(c.person[by], np.arange(n + 1))
        stats[kind] = np.array([_log_lrs(
            c.correct[r], p_grid[:, c.item[r]], log_t[r], rt.beta[c.item[r]],
            rt.alpha[c.item[r]], rt.sigma_tau, p_true[r], float(ta[j]), beta[c.item[r]],
            alpha[c.item[r]]) for j in range(n) for r in [by[bounds[j]:bounds[j + 1]]]])
    out = {}
    for col, name in ((0, "marginal"), (1, "oracle")):
        for level in (0.006, 0.01):
            limit = np.quantile(stats["honest"][:, col], 1 - level)
            out[f"{name}_{level}"] = float(np.mean(stats["preknowledge"][:, col] >= limit))
    return out


def note_setup(rng: np.random.Generator) -> tuple[irt.Bank, NDArray, NDArray, object]:
    """The note study's bank, its true time parameters and the response-time model calibrated
    on the bank's own (honest) latencies of 3,000 candidates of 30-item CATs."""
    bank, beta, alpha = make_bank(rng)
    theta = rng.normal(size=3000)
    t = run_cat(bank, irt.simulate_responses(theta, bank, rng), theta, seed=5)
    tau = rng.normal(0, 0.3, 3000)
    t.seconds = np.exp(beta[t.item] - tau[t.person]
                       + rng.standard_normal(t.person.size) / alpha[t.item])
    rt = fit_lognormal(t.person, t.item, t.seconds, 3000, N_ITEMS,
                       min_responses=RT_MIN_RESPONSES)
    return bank, beta, alpha, rt


#: Fresh honest simulees per length on which the quoted false-positive rate is measured: the
#: first 2,000 as in the original 30-item study, the rest drawn after the other kinds (so the
#: detection rows of a length do not depend on this number).
FRESH_HONEST = 10_000


def note_study(rng: np.random.Generator, length: int = TEST_LENGTH,
               fresh_honest: int = FRESH_HONEST, train_honest: int = 4000,
               target_rate: float = 0.01) -> tuple[dict[str, float], IntegrityThresholds]:
    """Thresholds chosen on ``train_honest`` honest simulees of ``length``-item CATs at
    ``target_rate``; the share noted among 2,000 fresh simulees of each kind at the same length,
    and among ``fresh_honest`` fresh honest ones (the 2,000 and more): the rate the product
    quotes."""
    bank, beta, alpha, rt = note_setup(rng)
    train, _ = candidates(rng, bank, beta, alpha, train_honest, "honest", rt, length=length)
    th = choose_thresholds(train, target_rate=target_rate)
    out = {"length": length, "threshold_rapid": th.rapid_count,
           "threshold_pk": th.preknowledge_llr, "threshold_lz": th.lz_star,
           "fpr_train": th.false_positive_rate, "n_train": train_honest, "target": target_rate}
    honest: list[bool] = []
    for kind, speed in (("honest", 1.0), ("rapid", 1.0), ("preknowledge", 0.5),
                        ("preknowledge_third", 1 / 3)):
        ev, share = candidates(rng, bank, beta, alpha, 2000, kind.split("_")[0], rt, speed,
                               length=length)
        noted = [bool(integrity_notes(e, th)) for e in ev]
        out[f"noted_{kind}"] = float(np.mean(noted))
        out[f"share_{kind}"] = share
        if kind == "honest":
            honest = noted
    if fresh_honest > len(honest):
        ev, _ = candidates(rng, bank, beta, alpha, fresh_honest - len(honest), "honest", rt,
                           length=length)
        honest += [bool(integrity_notes(e, th)) for e in ev]
    out["n_fresh_honest"] = len(honest)
    out["noted_fresh_honest"] = float(np.mean(honest))
    # the thresholds as the product stores them: the rate quoted is the fresh honest sample's
    return out, replace(th, false_positive_rate=out["noted_fresh_honest"],
                        n_simulated=len(honest))


def between_study(table: list[IntegrityThresholds], lengths: list[int],
                  n: int = FRESH_HONEST) -> list[dict[str, float]]:
    """Honest simulees of test lengths *between* the studied ones (same bank and time model as
    the table, seed 20261204 for the set-up, then ``[20261206, length]``): the share noted at
    the thresholds of the studied length just below and just above, against the rates quoted
    for those entries."""
    rows = []
    for length in lengths:
        bank, beta, alpha, rt = note_setup(np.random.default_rng(20261204))
        rng = np.random.default_rng([20261206, length])
        ev, _ = candidates(rng, bank, beta, alpha, n, "honest", rt, length=length)
        below = [t for t in table if t.n_answers <= length]
        above = [t for t in table if t.n_answers >= length]
        row: dict[str, float] = {"length": length, "n": n}
        for name, entries in (("below", below[-1:]), ("above", above[:1])):
            for t in entries:
                row[f"{name}_length"] = t.n_answers
                row[f"{name}_quoted"] = t.false_positive_rate
                row[f"{name}_noted"] = float(np.mean([bool(integrity_notes(e, t))
                                                      for e in ev]))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=10)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--per-month", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--notes-only", action="store_true",
                    help="only the candidate-note study (seed 20261204, the product's "
                         "thresholds) and the power bound of pre-knowledge detection")
    ap.add_argument("--lengths", type=_ints, default=None,
                    help="comma-separated test lengths: the note study at each (seed "
                         "20261204 for every length), printed as the product's table")
    ap.add_argument("--train", type=int, default=4000,
                    help="honest simulees the thresholds are chosen on (per length)")
    ap.add_argument("--target", type=float, default=0.01,
                    help="the share of those the thresholds may flag")
    ap.add_argument("--between", type=_ints, default=None,
                    help="with --lengths: test lengths between the studied ones at which "
                         "the neighbouring entries' false-positive rates are checked")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.lengths:
        table = []
        for length in args.lengths:
            notes, th = note_study(np.random.default_rng(20261204), length,
                                   train_honest=args.train, target_rate=args.target)
            table.append(th)
            print(f"--- {length}-item CATs ({time.perf_counter() - t0:.0f} s)")
            print_notes(notes)
        print_table(table)
        if args.between:
            print_between(between_study(table, args.between))
        print(f"({time.perf_counter() - t0:.0f} s)")
        return
    if args.notes_only:
        print_notes(note_study(np.random.default_rng(20261204), train_honest=args.train,
                               target_rate=args.target)[0])
        b = power_bound(np.random.default_rng(20261205))
        print("upper bounds on pre-knowledge power (25 % known, half time), at 0.6 % / 1 % "
              "false positives:")
        print(f"  Neyman-Pearson (theta, tau unknown, integrated): {b['marginal_0.006']:.1%} / "
              f"{b['marginal_0.01']:.1%}")
        print(f"  oracle (true theta, tau, item parameters): {b['oracle_0.006']:.1%} / "
              f"{b['oracle_0.01']:.1%}")
        print(f"({time.perf_counter() - t0:.0f} s)")
        return
    rng = np.random.default_rng(args.seed)
    rows = [leak_study(rng, args.months, args.per_month) for _ in range(args.replications)]
    detected = np.mean([r["detected_300"] for r in rows])
    fa = sum(r["false_alarms"] for r in rows)
    im = sum(r["item_months"] for r in rows)
    print(f"leak detection ({args.replications} replications x {LEAKED} leaked items, "
          f"{args.months} months x {args.per_month} candidates):")
    print(f"  leaked items flagged within 300 later responses: {detected:.1%} "
          f"(median delay {np.median([r['median_delay'] for r in rows]):.0f} responses)")
    print(f"  false flags: {fa} in {im} clean item-months = {1000 * fa / im:.2f} per 1,000")
    print(f"  response-time model recovery (pre-leak traffic, items with >= {RT_MIN_RESPONSES} "
          f"times: {np.mean([r['rt_items'] for r in rows]):.0f} of {N_ITEMS}): beta RMSE "
          f"{np.mean([r['rt_beta_rmse'] for r in rows]):.3f}, alpha RMSE "
          f"{np.mean([r['rt_alpha_rmse'] for r in rows]):.3f}")
    print_notes(note_study(rng)[0])
    print(f"({time.perf_counter() - t0:.0f} s)")


def _ints(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 2:
        raise argparse.ArgumentTypeError("test lengths are integers >= 2")
    return values


def print_notes(notes: dict[str, float]) -> None:
    print(f"candidate notes (thresholds from {notes['n_train']:,.0f} honest simulees, target "
          f"{notes['target']:.2%}):")
    print(f"  thresholds: rapid >= {notes['threshold_rapid']}, pre-knowledge LLR >= "
          f"{notes['threshold_pk']:.2f}, lz* <= {notes['threshold_lz']:.2f}")
    print(f"  honest candidates with a note: {notes['noted_honest']:.2%} "
          f"(training {notes['fpr_train']:.2%})")
    if notes.get("n_fresh_honest", 0) > 2000:
        lo, hi = rate_interval(notes["noted_fresh_honest"], int(notes["n_fresh_honest"]))
        print(f"  ... among {notes['n_fresh_honest']:,} fresh honest candidates (these 2,000 "
              f"and more): {notes['noted_fresh_honest']:.2%} (95 % interval {lo:.2%}-{hi:.2%})")
    print(f"  rapid guessers ({notes['share_rapid']:.0%} of answers): "
          f"{notes['noted_rapid']:.1%} noted")
    print(f"  pre-knowledge ({notes['share_preknowledge']:.0%} of answers, known items in half "
          f"the usual time): {notes['noted_preknowledge']:.1%} noted")
    print(f"  pre-knowledge ({notes['share_preknowledge_third']:.0%} of answers, in a third of "
          f"the usual time): {notes['noted_preknowledge_third']:.1%} noted")


def rate_interval(rate: float, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95 % interval of a share ``rate`` of ``n``."""
    from scipy.stats import beta

    k = round(rate * n)
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def print_table(table: list[IntegrityThresholds]) -> None:
    """The table as `web.services.forensics.THRESHOLDS_BY_LENGTH` holds it."""
    print("THRESHOLDS_BY_LENGTH = (")
    for t in table:
        print(f"    IntegrityThresholds(n_answers={t.n_answers}, rapid_count={t.rapid_count}, "
              f"preknowledge_llr={t.preknowledge_llr:.4f}, lz_star={t.lz_star:.4f}, "
              f"false_positive_rate={t.false_positive_rate:.4f}, "
              f"n_simulated={t.n_simulated}),")
    print(")")


def print_between(rows: list[dict[str, float]]) -> None:
    print("honest simulees between the studied lengths: noted / quoted at the entry below "
          "and above")
    for r in rows:
        parts = [f"  {r['length']:>3} answers (n = {r['n']}):"]
        for name in ("below", "above"):
            if f"{name}_length" in r:
                lo, hi = rate_interval(r[f"{name}_noted"], int(r["n"]))
                parts.append(f"{name} ({r[f'{name}_length']}) {r[f'{name}_noted']:.2%} "
                             f"[{lo:.2%}-{hi:.2%}] / {r[f'{name}_quoted']:.2%}")
        print("  ".join(parts))


if __name__ == "__main__":
    main()
