"""2PL or 3PL for four-option items: what ignoring guessing does to low scorers' scores.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_guessing_model.py [--seed 7]

Truth: the shipped bank's 40 ``databases`` items with their provisional 3PL parameters (c near
1/4: a candidate who does not know the answer picks one of four options). A calibration sample
(3,000 simulees × 15 random items, the pretest design of `scripts/provisional_parameters.py`)
is calibrated twice with `calibration.MMLCalibrator`: as a 2PL (c = 0) and as a 3PL with
BILOG-MG's priors (a ~ lognormal(0, 0.5), c ~ Beta(6, 16)). A separate scoring sample
(θ on a grid from −2.5 to 2.5, 4,000 simulees per point, all 40 items each) is scored by EAP
with each calibrated bank. Printed per true θ: mean θ̂ − θ (bias), RMSE and the coverage of the
90 % posterior interval, plus the calibrations' AIC and BIC (data-based model choice).

Guessing lifts the lowest scores: a 2PL has to explain correct answers of weak candidates by
ability, so it places them too high (and, calibrated on such data, compresses the scale).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import irt  # noqa: E402
from calibration import ItemSpec, MMLCalibrator, Priors  # noqa: E402
from irt.io import read_items_csv  # noqa: E402
from item_bank.shipped import PROVISIONAL_PARAMETERS  # noqa: E402

SKILL = "databases"
PER_PERSON = 15
Z90 = 1.6448536269514722


def n_free(model: str, n_items: int) -> int:
    return {"2pl": 2, "3pl": 3}[model] * n_items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--calibration-sample", type=int, default=3000)
    ap.add_argument("--per-point", type=int, default=4000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    shipped = read_items_csv(PROVISIONAL_PARAMETERS).bank
    truth = shipped.take(shipped.skill_indices(SKILL))
    n_items = len(truth)
    cal = irt.simulate_sparse_responses(rng.normal(size=args.calibration_sample), truth,
                                        PER_PERSON, rng)
    fits = {}
    for model, priors in (("2pl", Priors()), ("3pl", Priors(a=(0.0, 0.5), c=(6.0, 16.0)))):
        specs = [ItemSpec(i, model, SKILL) for i in truth.item_ids]
        fit = MMLCalibrator(model, priors=priors).fit(cal, specs)
        order = [fit.items_.index(i) for i in truth.item_ids]
        fits[model] = (fit.items_.take(np.array(order)), fit.loglik_)
    n_obs = cal.n_responses
    print(f"{SKILL}: {n_items} items, calibration sample {args.calibration_sample} × "
          f"{PER_PERSON} items ({n_obs} responses), seed {args.seed}")
    print("| model | log-likelihood | AIC | BIC | mean c |")
    print("|---|---|---|---|---|")
    for model, (bank, ll) in fits.items():
        k = n_free(model, n_items)
        print(f"| {model} | {ll:.1f} | {2 * k - 2 * ll:.1f} | {k * np.log(n_obs) - 2 * ll:.1f} "
              f"| {bank.c.mean():.3f} |")
    grid = np.linspace(-2.5, 2.5, 11)
    theta = np.repeat(grid, args.per_point)
    # every scoring simulee answers all items of the skill, so the likelihood, not the N(0, 1)
    # prior of EAP, drives the estimates (as for a long test)
    score = irt.simulate_responses(theta, truth, rng)
    print()
    print("| true θ | bias 2PL | bias 3PL | RMSE 2PL | RMSE 3PL | 90 % coverage 2PL | "
          "90 % coverage 3PL |")
    print("|---|---|---|---|---|---|---|")
    est = {}
    for model, (bank, _) in fits.items():
        ab = irt.eap(score, bank)
        est[model] = (ab.theta[:, 0] if ab.theta.ndim == 2 else ab.theta,
                      ab.se[:, 0] if ab.se.ndim == 2 else ab.se)
    for g in grid:
        rows = theta == g
        cells = []
        for stat in ("bias", "rmse", "cover"):
            for model in ("2pl", "3pl"):
                t, se = est[model][0][rows], est[model][1][rows]
                if stat == "bias":
                    cells.append(f"{np.mean(t - g):+.3f}")
                elif stat == "rmse":
                    cells.append(f"{np.sqrt(np.mean((t - g) ** 2)):.3f}")
                else:
                    cells.append(f"{np.mean(np.abs(t - g) <= Z90 * se):.3f}")
        print(f"| {g:+.1f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
