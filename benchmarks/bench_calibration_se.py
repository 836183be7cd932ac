"""Standard errors against replication: do the reported SEs match the spread of the estimates?

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_calibration_se.py [--reps 200]

For each model, one fixed bank is calibrated on ``reps`` independent samples of persons. For every
parameter it compares the root mean square of the reported SEs with the empirical SD of the
estimates over the replications, and prints the pooled ratio ``sqrt(mean SE² / mean SD²)``, the
range of the per-parameter ratios, and the coverage of the 95 % Wald intervals.
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

STUDIES = [("2pl", 20, 2000), ("3pl", 20, 4000), ("grm", 10, 1500), ("gpcm", 10, 1500)]


def study(model: str, n_items: int, n_persons: int, reps: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    bank = irt.generate_items(n_items, model, rng)
    est, ses = [], []
    t0 = time.perf_counter()
    for _ in range(reps):
        x = irt.simulate_responses(rng.normal(size=n_persons), bank, rng)
        fit = MMLCalibrator(model).fit(x)
        if len(fit.items_) != n_items:
            continue
        if model in ("grm", "gpcm"):
            est.append(np.concatenate([fit.items_.a, fit.items_.thresholds.ravel()]))
            ses.append(np.concatenate([fit.se_.a, fit.se_.thresholds.ravel()]))
        else:
            cols = [fit.items_.a, fit.items_.b] + ([fit.items_.c] if model == "3pl" else [])
            scol = [fit.se_.a, fit.se_.b] + ([fit.se_.c] if model == "3pl" else [])
            est.append(np.concatenate(cols))
            ses.append(np.concatenate(scol))
    seconds = time.perf_counter() - t0
    est, ses = np.array(est), np.array(ses)
    if model in ("grm", "gpcm"):
        truth = np.concatenate([bank.a, bank.thresholds.ravel()])
    else:
        truth = np.concatenate([bank.a, bank.b] + ([bank.c] if model == "3pl" else []))
    if model in ("grm", "gpcm"):
        family = np.array(["a"] * n_items + ["b_k"] * bank.thresholds.size)
    else:
        family = np.array(["a"] * n_items + ["b"] * n_items + (["c"] * n_items
                                                                if model == "3pl" else []))
    keep = ~np.isnan(truth)
    est, ses, truth, family = est[:, keep], ses[:, keep], truth[keep], family[keep]
    sd = est.std(axis=0, ddof=1)
    rms_se = np.sqrt(np.nanmean(ses**2, axis=0))
    ratio = rms_se / sd
    cover = np.abs(est - truth) <= 1.96 * ses
    rows = []
    for fam in ["all", *dict.fromkeys(family)]:
        sel = np.ones_like(family, dtype=bool) if fam == "all" else family == fam
        pooled = float(np.sqrt(np.mean(rms_se[sel] ** 2) / np.mean(sd[sel] ** 2)))
        r = ratio[sel]
        rows.append(f"| {model} {n_items}×{n_persons:,} | {fam} | {len(est)} | {pooled:.3f} | "
                    f"{np.median(r):.3f} | {r.min():.2f}–{r.max():.2f} | "
                    f"{np.mean(cover[:, sel]):.3f} | {seconds:.1f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    print("| model | parameters | replications | pooled SE/SD | median SE/SD | range SE/SD "
          "| 95 % coverage | time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for k, (model, n_items, n_persons) in enumerate(STUDIES):
        print(study(model, n_items, n_persons, args.reps, seed=100 + k), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
