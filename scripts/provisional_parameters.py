"""Provisional item parameters for the shipped Back-End Engineer bank (seeded, reproducible).

    .venv/bin/python scripts/provisional_parameters.py [--seed 20261204] [--persons 3000]

The shipped items are four-option multiple-choice questions, so they are scored with the **3PL**
(Birnbaum 1968): a candidate who does not know the answer still picks the key about one time in
four, and a 2PL (c = 0) would read such lucky answers as knowledge. The parameters are
**provisional**: real responses replace them by recalibration (`proficio calibrate`).

Steps:

1. Authored difficulty level ℓ ∈ {1 … 5} (1 junior … 5 senior) → b = 0.9 (ℓ − 3), i.e. levels at
   −1.8, −0.9, 0, 0.9, 1.8 on the N(0, 1) ability scale of each skill.
2. Generating ("true") parameters for the simulation: b_true = b + N(0, 0.25²),
   a_true ~ lognormal(0, 0.25) (median 1.0, a typical discrimination for well-written
   multiple-choice items, cf. Baker & Kim 2004, ch. 2) and c_true ~ Beta(8, 24) (mean 1/4 = 1 /
   number of options, SD 0.08: blind guessing among four options, with some items' distractors
   more or less attractive than chance).
3. A simulated pretest log: ``--persons`` simulees with θ ~ N(0, 1) in every skill (skills are
   separate scales), each answering ``--per-skill`` items drawn at random in every skill (a
   spiralled pretest design, missing completely at random).
4. MML-EM calibration of that log, one 3PL scale per skill (`calibration.MMLCalibrator`, Bock &
   Aitkin 1981), with BILOG-MG's priors: a ~ lognormal(0, 0.5) on the slopes, and on the lower
   asymptote c ~ Beta(20p + 1, 20(1 − p) + 1)
   with p = 1/(number of options) = 1/4, i.e. Beta(6, 16) (Zimowski et al. 2003; Mislevy 1986):
   the prior keeps c near chance where the data say little, which is most of the scale for a
   bank calibrated on ~1,000 responses per item. Standard errors from the cross-product
   information.

Writes ``item_bank/data/backend_engineer/parameters.csv`` (the DESIGN.md items CSV with
``se_a, se_b, se_c, n_responses, provisional=true`` and the authored ``level``) and prints how
well the calibration recovered the generating values (a check of the pipeline, not of the
items). Every shipped item must have the same number of options (the prior is one per run);
the script stops otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration import ItemSpec, MMLCalibrator, Priors  # noqa: E402
from irt import Bank, ItemParams, SparseResponses, simulate_sparse_responses  # noqa: E402
from irt.io import write_items_csv  # noqa: E402
from item_bank.content import read_manifest_dir  # noqa: E402
from item_bank.shipped import PROVISIONAL_PARAMETERS, SHIPPED_BANK  # noqa: E402

#: b of authored level ℓ is B_PER_LEVEL · (ℓ − 3).
B_PER_LEVEL = 0.9
B_JITTER_SD = 0.25
A_LOG_SD = 0.25
#: Generating c ~ Beta(C_TRUE_STRENGTH · p, C_TRUE_STRENGTH · (1 − p)), p = 1/options.
C_TRUE_STRENGTH = 32.0
#: Lognormal (meanlog, sdlog) prior on a: BILOG-MG's default for the 3PL (Zimowski et al. 2003).
#: Without it, items whose lower asymptote absorbs the low scorers drift to a → ∞.
A_PRIOR = (0.0, 0.5)
#: BILOG-MG's prior weight: c ~ Beta(C_PRIOR_WEIGHT · p + 1, C_PRIOR_WEIGHT · (1 − p) + 1).
C_PRIOR_WEIGHT = 20.0


def level_to_b(level: int) -> float:
    return B_PER_LEVEL * (level - 3)


def guessing_prior(n_options: int) -> tuple[float, float]:
    """Beta(α, β) prior on c centred on chance, ``α = 20p + 1, β = 20(1 − p) + 1``, p = 1/n
    (BILOG-MG; Zimowski et al. 2003). Four options give Beta(6, 16), mode 0.25."""
    if n_options < 2:
        raise ValueError(f"a multiple-choice item needs >= 2 options, got {n_options}")
    p = 1.0 / n_options
    return C_PRIOR_WEIGHT * p + 1.0, C_PRIOR_WEIGHT * (1.0 - p) + 1.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--persons", type=int, default=3000)
    ap.add_argument("--per-skill", type=int, default=15)
    ap.add_argument("--out", type=Path, default=PROVISIONAL_PARAMETERS)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    doc = read_manifest_dir(SHIPPED_BANK)
    items = sorted(doc.items, key=lambda it: (it.skill, it.external_id))
    if any(it.difficulty is None for it in items):
        missing = [it.external_id for it in items if it.difficulty is None]
        raise SystemExit(f"items without a difficulty level: {missing}")
    n_options = {len(it.options) for it in items}
    if len(n_options) != 1:
        raise SystemExit(f"items have {sorted(n_options)} options; one prior on c needs one "
                         f"number of options (calibrate groups separately)")
    k = n_options.pop()
    prior_c = guessing_prior(k)
    b_level = np.array([level_to_b(it.difficulty) for it in items])
    true = Bank.from_params(
        ItemParams(it.external_id, "3pl", float(np.exp(rng.normal(0.0, A_LOG_SD))),
                   float(b_level[j] + rng.normal(0.0, B_JITTER_SD)),
                   float(rng.beta(C_TRUE_STRENGTH / k, C_TRUE_STRENGTH * (1 - 1 / k))),
                   skill=it.skill)
        for j, it in enumerate(items))
    skills = sorted({it.skill for it in items})
    persons, item_idx, resp = [], [], []
    for skill in skills:
        idx = true.skill_indices(skill)
        theta = rng.normal(0.0, 1.0, args.persons)
        per = min(args.per_skill, idx.size)
        sim = simulate_sparse_responses(theta, true.take(idx), per, rng)
        persons.append(sim.person)
        item_idx.append(idx[sim.item])
        resp.append(sim.response)
    data = SparseResponses.validated(np.concatenate(persons), np.concatenate(item_idx),
                                     np.concatenate(resp), args.persons, len(true))
    specs = [ItemSpec(it.external_id, "3pl", it.skill) for it in items]
    fit = MMLCalibrator("3pl", priors=Priors(a=A_PRIOR, c=prior_c)).fit(data, specs)
    est = fit.items_
    order = [est.index(iid) for iid in true.item_ids]
    se_a, se_b, se_c = fit.se_.a[order], fit.se_.b[order], fit.se_.c[order]

    def fmt(x: float) -> str:
        return "" if not np.isfinite(x) else f"{x:.4f}"

    calibrated = Bank.from_params(
        ItemParams(p.item_id, "3pl", round(p.a, 4), round(p.b, 4), round(p.c, 4), skill=p.skill)
        for p in (est.params()[j] for j in order))
    write_items_csv(args.out, calibrated, {
        "se_a": [fmt(v) for v in se_a], "se_b": [fmt(v) for v in se_b],
        "se_c": [fmt(v) for v in se_c],
        "n_responses": [str(int(n)) for n in fit.n_responses_[order]],
        "provisional": ["true"] * len(items),
        "level": [str(it.difficulty) for it in items],
    })
    r_b = float(np.corrcoef(calibrated.b, true.b)[0, 1])
    rmse_b = float(np.sqrt(np.mean((calibrated.b - true.b) ** 2)))
    r_a = float(np.corrcoef(calibrated.a, true.a)[0, 1])
    rmse_c = float(np.sqrt(np.mean((calibrated.c - true.c) ** 2)))
    print(f"{len(items)} items ({k} options) in {len(skills)} skills, {data.n_responses} "
          f"simulated responses of {args.persons} simulees (seed {args.seed}); 3PL with "
          f"a ~ lognormal{A_PRIOR}, c ~ Beta{prior_c}; converged={fit.converged_} after "
          f"{fit.n_iter_} cycles")
    print(f"recovery of the generating values: corr(b) = {r_b:.3f}, RMSE(b) = {rmse_b:.3f}, "
          f"corr(a) = {r_a:.3f}, RMSE(c) = {rmse_c:.3f}, mean c = {calibrated.c.mean():.3f} "
          f"(true {true.c.mean():.3f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
