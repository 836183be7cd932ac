"""Which standard errors agree with the replication SD at small N: Oakes or cross-product (XPD)?

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_se_coverage.py [--reps 200] [--sizes 300 2000]

For each model and sample size, one fixed bank is calibrated on ``reps`` independent samples of
persons (θ ~ N(0, 1)), once with each SE method (same data, same estimates). For every parameter
it compares the mean reported SE with the SD of the estimates over the replications; the table
gives, per parameter family, the mean of those ratios (target: within 10 % of 1), their range, and
the coverage of the 95 % Wald intervals. Replications where an item could not be calibrated are
skipped (counted in the table).
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

MODELS = [("2pl", 20), ("grm", 10)]
METHODS = ("oakes", "xpd")


def _params(model: str, bank_or_fit) -> tuple[np.ndarray, np.ndarray]:
    """Estimates (or truth) as one vector, and the family label of each entry."""
    items = bank_or_fit
    if model == "grm":
        values = np.concatenate([items.a, items.thresholds.ravel()])
        family = ["a"] * len(items) + ["b_k"] * items.thresholds.size
    else:
        values = np.concatenate([items.a, items.b])
        family = ["a"] * len(items) + ["b"] * len(items)
    return values, np.array(family)


def _errors(model: str, se) -> np.ndarray:
    if model == "grm":
        return np.concatenate([se.a, se.thresholds.ravel()])
    return np.concatenate([se.a, se.b])


def study(model: str, n_items: int, n_persons: int, reps: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    bank = irt.generate_items(n_items, model, rng, n_categories=4)
    truth, family = _params(model, bank)
    est = []
    ses: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    skipped = 0
    for _ in range(reps):
        x = irt.simulate_responses(rng.normal(size=n_persons), bank, rng)
        fits = {}
        for method in METHODS:
            t0 = time.perf_counter()
            fits[method] = MMLCalibrator(model, se_method=method).fit(x)
            seconds[method] += time.perf_counter() - t0
        if any(len(f.items_) != n_items for f in fits.values()):
            skipped += 1
            continue
        est.append(_params(model, fits["oakes"].items_)[0])
        for method in METHODS:
            ses[method].append(_errors(model, fits[method].se_))
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
    args = parser.parse_args()
    print("| case | SEs | parameters | replications | mean SE/SD | median SE/SD | range SE/SD "
          "| 95 % coverage | s per fit |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for k, (model, n_items) in enumerate(MODELS):
        for n_persons in args.sizes:
            for row in study(model, n_items, n_persons, args.reps, seed=700 + k):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
