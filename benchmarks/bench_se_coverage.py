"""Which standard errors agree with the replication SD at small N: Oakes or cross-product (XPD)?

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_se_coverage.py [--reps 200] [--sizes 300 2000] \
        [--models 2pl grm rsm rasch-mixed]

For each model and sample size, one fixed bank is calibrated on ``reps`` independent samples of
persons (θ ~ N(0, 1)), once with each SE method (same data, same estimates). For every parameter
it compares the mean reported SE with the SD of the estimates over the replications; the table
gives, per parameter family, the mean of those ratios (target: within 10 % of 1), their range, and
the coverage of the 95 % Wald intervals. Replications where an item could not be calibrated are
skipped (counted in the table).

The Rasch-family cases check the SEs under equality constraints: ``rsm`` (15 items × 4
categories, steps ``b_i + τ_k`` with τ shared by all items, latent SD 1.3 estimated) and
``rasch-mixed`` (one Rasch skill of 6 dichotomous, 4 three-category and 5 four-category PCM
items: three groups sharing the one slope ``a* = σ``). Their parameters are the reported steps
(``b`` of the dichotomous items); the slope is fixed at 1 and has no SE.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import irt  # noqa: E402
from calibration import MMLCalibrator  # noqa: E402

MODELS = {"2pl": 20, "grm": 10, "rsm": 15, "rasch-mixed": 15}
RASCH_SD = 1.3
METHODS = ("oakes", "xpd")


def _rasch_bank(model: str, rng: np.random.Generator) -> irt.Bank:
    """RSM: 15 items, locations spread over ±1.5, steps ``b_i + τ`` with τ = (−1, 0, 1) plus
    noise shared by all; mixed: Rasch, 3- and 4-category PCM items with their own steps."""
    if model == "rsm":
        tau = np.array([-1.0, 0.0, 1.0]) + rng.normal(0, 0.2, 3)
        tau -= tau.mean()
        return irt.Bank.from_params([irt.ItemParams(f"i{k}", "rsm", 1.0,
                                                    thresholds=tuple(b + tau))
                                     for k, b in enumerate(np.linspace(-1.5, 1.5, 15))])
    items = [irt.ItemParams(f"r{k}", "rasch", 1.0, float(rng.normal())) for k in range(6)]
    items += [irt.ItemParams(f"p{k}", "pcm", 1.0,
                             thresholds=tuple(np.sort(rng.normal(0, 1, 2)))) for k in range(4)]
    items += [irt.ItemParams(f"q{k}", "pcm", 1.0,
                             thresholds=tuple(np.sort(rng.normal(0, 1, 3)))) for k in range(5)]
    return irt.Bank.from_params(items)


def _params(model: str, bank_or_fit) -> tuple[np.ndarray, np.ndarray]:
    """Estimates (or truth) as one vector, and the family label of each entry."""
    items = bank_or_fit
    if model in ("rsm", "rasch-mixed"):
        values, family = [], []
        for i, m in enumerate(items.models):
            if m == "rasch":
                values.append(items.b[i])
                family.append("b (rasch)")
            else:
                k = int(items.n_categories[i]) - 1
                values.extend(items.thresholds[i, :k])
                family.extend([f"b_k ({m}, {k + 1} cat.)"] * k)
        return np.array(values, dtype=float), np.array(family)
    if model == "grm":
        values = np.concatenate([items.a, items.thresholds.ravel()])
        family = ["a"] * len(items) + ["b_k"] * items.thresholds.size
    else:
        values = np.concatenate([items.a, items.b])
        family = ["a"] * len(items) + ["b"] * len(items)
    return values, np.array(family)


def _errors(model: str, se, bank: irt.Bank | None = None) -> np.ndarray:
    if model in ("rsm", "rasch-mixed"):
        assert bank is not None
        out = []
        for i, m in enumerate(bank.models):
            out.extend([se.b[i]] if m == "rasch"
                       else se.thresholds[i, :int(bank.n_categories[i]) - 1])
        return np.array(out, dtype=float)
    if model == "grm":
        return np.concatenate([se.a, se.thresholds.ravel()])
    return np.concatenate([se.a, se.b])


def study(model: str, n_items: int, n_persons: int, reps: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    rasch = model in ("rsm", "rasch-mixed")
    bank = _rasch_bank(model, rng) if rasch else irt.generate_items(n_items, model, rng,
                                                                      n_categories=4)
    truth, family = _params(model, bank)
    sd_theta = RASCH_SD if rasch else 1.0
    fit_model = "pcm" if model == "rasch-mixed" else model
    est = []
    ses: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    skipped = 0
    for _ in range(reps):
        x = irt.simulate_responses(rng.normal(0, sd_theta, n_persons), bank, rng)
        fits = {}
        for method in METHODS:
            t0 = time.perf_counter()
            fits[method] = MMLCalibrator(fit_model, se_method=method).fit(
                x, items=bank if rasch else None)
            seconds[method] += time.perf_counter() - t0
        if any(len(f.items_) != n_items for f in fits.values()):
            skipped += 1
            continue
        est.append(_params(model, fits["oakes"].items_)[0])
        for method in METHODS:
            ses[method].append(_errors(model, fits[method].se_, bank))
    est_a = np.array(est)
    keep = ~np.isnan(truth)
    est_a, truth_k, fam = est_a[:, keep], truth[keep], family[keep]
    sd = est_a.std(axis=0, ddof=1)
    rows = []
    for method in METHODS:
        se = np.array(ses[method])[:, keep]
        ratio = np.nanmean(se, axis=0) / sd
        cover = np.abs(est_a - truth_k) <= 1.96 * se
        for f in ["all", *dict.fromkeys(fam)]:
            sel = np.ones_like(fam, dtype=bool) if f == "all" else fam == f
            r = ratio[sel]
            rows.append(f"| {model} {n_items}×{n_persons:,} | {method} | {f} | {len(est_a)} "
                        f"({skipped} skipped) | {np.mean(r):.3f} | {np.median(r):.3f} | "
                        f"{r.min():.2f}–{r.max():.2f} | {np.mean(cover[:, sel]):.3f} | "
                        f"{seconds[method] / reps:.3f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 2000])
    parser.add_argument("--models", nargs="+", default=["2pl", "grm"], choices=list(MODELS))
    args = parser.parse_args()
    print("| case | SEs | parameters | replications | mean SE/SD | median SE/SD | range SE/SD "
          "| 95 % coverage | s per fit |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for k, (model, n_items) in enumerate(MODELS.items()):
        if model not in args.models:
            continue
        for n_persons in args.sizes:
            for row in study(model, n_items, n_persons, args.reps, seed=700 + k):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
