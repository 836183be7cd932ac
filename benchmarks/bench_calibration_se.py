"""Standard errors: their cost (before/after) and whether they match the spread of estimates.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_calibration_se.py --timing [--baseline REV]
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_calibration_se.py [--reps 200]

``--timing`` measures the CPU time spent computing the standard errors (the calibrator's
``_covariance``, wrapped with a timer; process CPU time, which a shared machine disturbs less
than wall time; one BLAS thread; best of ``--repeat`` fits) for XPD and Oakes against the
implementation at git revision ``--baseline`` (loaded from ``git show``), checks that the XPD
values are unchanged, and prints the ratios.

Without ``--timing``:
For each model, one fixed bank is calibrated on ``reps`` independent samples of persons. For every
parameter it compares the root mean square of the reported SEs with the empirical SD of the
estimates over the replications, and prints the pooled ratio ``sqrt(mean SE² / mean SD²)``, the
range of the per-parameter ratios, and the coverage of the 95 % Wald intervals.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
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


ROOT = Path(__file__).resolve().parents[1]
TIMING_CASES = [  # (label, model, items, persons, responses per person or None, sparse path)
    ("2pl 100×20,000 dense", "2pl", 100, 20_000, None, False),
    ("2pl 100×20,000 sparse path", "2pl", 100, 20_000, None, True),
    ("2pl 300×20,000, 30 per person", "2pl", 300, 20_000, 30, True),
    ("grm 20×5,000", "grm", 20, 5_000, None, False),
    ("2pl 20×2,000", "2pl", 20, 2_000, None, False),
]
LARGE_CASE = ("2pl 1,000×100,000, 30 per person (3 M)", "2pl", 1000, 100_000, 30, True)


def _baseline_calibrator(rev: str) -> type:
    """``MMLCalibrator`` as it was at git revision ``rev`` (imported from a temporary file)."""
    text = subprocess.run(["git", "show", f"{rev}:calibration/mml.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_mml.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("calibration._baseline_mml", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.MMLCalibrator


def _se_seconds(cls: type, x, model: str, repeat: int, **kw) -> tuple[float, object]:
    """Best time spent in ``cls._covariance`` over ``repeat`` fits, and the last fit."""
    spent: list[float] = []
    original = cls._covariance

    def timed(self, *a, **k):
        t0 = time.process_time()
        try:
            return original(self, *a, **k)
        finally:
            spent.append(time.process_time() - t0)

    cls._covariance = timed
    try:
        for _ in range(repeat):
            fit = cls(model, **kw).fit(x)
    finally:
        cls._covariance = original
    return min(spent), fit


def timing(baseline: str, repeat: int, large: bool) -> None:
    old = _baseline_calibrator(baseline)
    print(f"standard-error CPU time (s), best of {repeat}; baseline = {baseline}")
    print("| case | baseline XPD | XPD | ×faster | Oakes | XPD unchanged (max rel. diff) |")
    print("|---|---:|---:|---:|---:|---:|")
    cases = TIMING_CASES + ([LARGE_CASE] if large else [])
    for k, (label, model, n_items, n_persons, per, sparse) in enumerate(cases):
        rng = np.random.default_rng(500 + k)
        bank = irt.generate_items(n_items, model, rng)
        theta = rng.normal(size=n_persons)
        if per is None:
            x = irt.simulate_responses(theta, bank, rng)
            if sparse:
                x = irt.SparseResponses.from_dense(x)
        else:
            x = irt.simulate_sparse_responses(theta, bank, per, rng)
        kw = {"dense": False} if sparse else {}
        t_old, f_old = _se_seconds(old, x, model, repeat, **kw)
        t_new, f_new = _se_seconds(MMLCalibrator, x, model, repeat, se_method="xpd", **kw)
        n_par = 2 * n_items if model == "2pl" else n_items * 4
        oakes = "—"
        if 2.0 * n_par * n_items * n_persons * 41 <= 4e9:
            t_oak, _ = _se_seconds(MMLCalibrator, x, model, 1, se_method="oakes", **kw)
            oakes = f"{t_oak:.3f}"
        a = np.concatenate([f_old.se_.a, f_old.se_.b, f_old.se_.thresholds.ravel()])
        b = np.concatenate([f_new.se_.a, f_new.se_.b, f_new.se_.thresholds.ravel()])
        same = f_old.se_.method == f_new.se_.method
        diff = f"{np.nanmax(np.abs(a / b - 1)):.1e}" if same else \
            f"{f_old.se_.method} → {f_new.se_.method}"
        print(f"| {label} | {t_old:.3f} | {t_new:.3f} | {t_old / t_new:.1f} | {oakes} | "
              f"{diff} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--timing", action="store_true", help="time the SEs before/after")
    parser.add_argument("--baseline", default="37ab8c6", help="git revision to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="add the 3 M-response case")
    args = parser.parse_args()
    if args.timing:
        timing(args.baseline, args.repeat, args.large)
        return 0
    print("| model | parameters | replications | pooled SE/SD | median SE/SD | range SE/SD "
          "| 95 % coverage | time (s) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for k, (model, n_items, n_persons) in enumerate(STUDIES):
        print(study(model, n_items, n_persons, args.reps, seed=100 + k), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
