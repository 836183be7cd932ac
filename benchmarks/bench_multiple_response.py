"""Multiple-response items calibrated with GPCM (issue 22).

Part 1, parameter recovery: a bank of "select all that apply" items scored as partial credit
(half with 2 correct options → categories 0-2, half with 3 → 0-3) is simulated from the GPCM and
calibrated with `calibration.MMLCalibrator("gpcm")`; RMSE of the slopes and of the step
parameters, against the dichotomous path (a 2PL bank of as many items, simulated and calibrated
the same way) at the same N.

Part 2, scoring rule: the candidates choose options (each correct option with probability
``σ(a(θ − b_j))``, each wrong option with ``1 − σ(a(θ − b_j))``); the same selections are scored
once as partial credit (`item_bank.scoring.score_response`, calibrated with GPCM) and once all-or-
nothing (0/1, calibrated with 2PL). Reported: how well the EAP θ of the calibration recovers the
true θ (correlation and RMSE) under each rule. (The selection model is not the GPCM, so part 2
compares measurement, not parameter recovery.)

Usage: ``.venv/bin/python benchmarks/bench_multiple_response.py [--reps 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import irt
from calibration import MMLCalibrator
from item_bank.content import parse_bank_json
from item_bank.scoring import score_response


def rmse(x: np.ndarray, y: np.ndarray) -> float:
    m = np.isfinite(x) & np.isfinite(y)
    return float(np.sqrt(np.mean((x[m] - y[m]) ** 2)))


def mr_bank(n_items: int, rng: np.random.Generator) -> irt.Bank:
    """GPCM items, half with 3 categories (2 correct options), half with 4 (3 correct)."""
    half = n_items // 2
    a = irt.generate_items(half, "gpcm", rng, n_categories=3, prefix="m")
    b = irt.generate_items(n_items - half, "gpcm", rng, n_categories=4, prefix="n")
    return irt.Bank.from_params([*a.params(), *b.params()])


def recovery(n_persons: int, n_items: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    bank = mr_bank(n_items, rng)
    x = irt.simulate_responses(rng.normal(size=n_persons), bank, rng)
    fit = MMLCalibrator("gpcm", standard_errors=False).fit(x, bank)
    out["gpcm_a"] = rmse(fit.items_.a, bank.a)
    out["gpcm_steps"] = rmse(fit.items_.thresholds, bank.thresholds)
    out["gpcm_converged"] = float(fit.converged_)
    dich = irt.generate_items(n_items, "2pl", rng)
    y = irt.simulate_responses(rng.normal(size=n_persons), dich, rng)
    fit2 = MMLCalibrator("2pl", standard_errors=False).fit(y)
    out["2pl_a"] = rmse(fit2.items_.a, dich.a)
    out["2pl_b"] = rmse(fit2.items_.b, dich.b)
    return out


def selection_study(n_persons: int, n_items: int, seed: int) -> dict[str, float]:
    """Option selections scored two ways (see the module docstring)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n_persons)
    opts = [{"id": c, "text": c.upper()} for c in "abcde"]
    items = parse_bank_json("sim", {"format": "proficio-bank/1", "skill": "s", "items": [
        {"id": f"q{i}", "stem": "s", "options": opts, "response_type": "multiple",
         "correct": ["a", "b", "c"][: 2 + i % 2]} for i in range(n_items)]}).items
    aon = [parse_bank_json("sim", {"format": "proficio-bank/1", "skill": "s", "items": [
        {"id": it.external_id, "stem": "s", "options": opts, "response_type": "multiple",
         "correct": list(it.correct), "scoring": "all_or_nothing"}]}).items[0] for it in items]
    partial = np.zeros((n_persons, n_items), dtype=np.int64)
    whole = np.zeros((n_persons, n_items), dtype=np.int64)
    for i, it in enumerate(items):
        a = float(np.exp(rng.normal(0.0, 0.25)))
        b = rng.normal(0.0, 1.0, size=len(opts))
        p = 1.0 / (1.0 + np.exp(-a * (theta[:, None] - b[None, :])))
        is_correct = np.array([o["id"] in it.correct for o in opts])
        chosen = np.where(is_correct[None, :], rng.random(p.shape) < p,
                          rng.random(p.shape) >= p)
        for n in range(n_persons):
            picks = [o["id"] for o, c in zip(opts, chosen[n], strict=True) if c] or ["e"]
            answer = ",".join(picks)
            partial[n, i] = score_response(it, answer)
            whole[n, i] = score_response(aon[i], answer)
    out: dict[str, float] = {}
    for name, x, model in (("partial", partial, "gpcm"), ("all_or_nothing", whole, "2pl")):
        spec = irt.Bank.from_params([
            irt.ItemParams(f"q{i}", model, 1.0, thresholds=tuple(np.linspace(
                -1, 1, int(x[:, i].max())))) if model == "gpcm" and x[:, i].max() >= 1
            else irt.ItemParams(f"q{i}", "2pl", 1.0, 0.0) for i in range(n_items)])
        fit = MMLCalibrator(model, standard_errors=False).fit(x, spec)
        est = fit.scores_.theta[:, 0]
        out[f"{name}_r"] = float(np.corrcoef(est, theta)[0, 1])
        out[f"{name}_rmse"] = rmse(est, theta)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--items", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(f"Part 1: parameter recovery, {args.items} items, mean over {args.reps} seeds")
    print(f"{'N':>6} {'GPCM a':>8} {'GPCM steps':>11} {'2PL a':>7} {'2PL b':>7} {'conv':>5}")
    for n in (500, 1000, 2000):
        rows = [recovery(n, args.items, seed) for seed in range(args.reps)]
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{n:>6} {m['gpcm_a']:>8.3f} {m['gpcm_steps']:>11.3f} {m['2pl_a']:>7.3f} "
              f"{m['2pl_b']:>7.3f} {m['gpcm_converged']:>5.2f}")
    print(f"\nPart 2: option selections scored two ways, {args.items} items of 5 options, "
          f"N = 1000, mean over {args.reps} seeds")
    rows = [selection_study(1000, args.items, 100 + seed) for seed in range(args.reps)]
    m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"partial credit (GPCM):  r(θ̂, θ) = {m['partial_r']:.3f}, RMSE {m['partial_rmse']:.3f}")
    print(f"all-or-nothing (2PL):   r(θ̂, θ) = {m['all_or_nothing_r']:.3f}, "
          f"RMSE {m['all_or_nothing_rmse']:.3f}")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
