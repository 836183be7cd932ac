"""Provisional item parameters for the shipped Back-End Engineer bank (seeded, reproducible).

    .venv/bin/python scripts/provisional_parameters.py [--seed 20261128] [--persons 1500]

Steps (the parameters are **provisional**: real responses replace them by recalibration):

1. Authored difficulty level ℓ ∈ {1 … 5} (1 junior … 5 senior) → b = 0.9 (ℓ − 3), i.e. levels at
   −1.8, −0.9, 0, 0.9, 1.8 on the N(0, 1) ability scale of each skill.
2. Generating ("true") parameters for the simulation: b_true = b + N(0, 0.25²) and
   a_true ~ lognormal(0, 0.25) (median 1.0: a typical discrimination for well-written
   multiple-choice items, cf. Baker & Kim 2004, ch. 2), 2PL.
3. A simulated pretest log: ``--persons`` simulees with θ ~ N(0, 1) in every skill (skills are
   separate scales), each answering ``--per-skill`` items drawn at random in every skill
   (a spiralled pretest design, missing completely at random).
4. MML-EM calibration of that log, one 2PL scale per skill (`calibration.MMLCalibrator`, Bock &
   Aitkin 1981), standard errors from the cross-product information.

Writes ``item_bank/data/backend_engineer/parameters.csv`` (the DESIGN.md items CSV with
``se_a, se_b, n_responses, provisional=true`` and the authored ``level``) and prints how well the
calibration recovered the generating b (a check of the pipeline, not of the items).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration import ItemSpec, MMLCalibrator  # noqa: E402
from irt import Bank, ItemParams, SparseResponses, simulate_sparse_responses  # noqa: E402
from irt.io import write_items_csv  # noqa: E402
from item_bank.content import read_manifest_dir  # noqa: E402
from item_bank.shipped import PROVISIONAL_PARAMETERS, SHIPPED_BANK  # noqa: E402

#: b of authored level ℓ is B_PER_LEVEL · (ℓ − 3).
B_PER_LEVEL = 0.9
B_JITTER_SD = 0.25
A_LOG_SD = 0.25


def level_to_b(level: int) -> float:
    return B_PER_LEVEL * (level - 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--persons", type=int, default=1500)
    ap.add_argument("--per-skill", type=int, default=12)
    ap.add_argument("--out", type=Path, default=PROVISIONAL_PARAMETERS)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    doc = read_manifest_dir(SHIPPED_BANK)
    items = sorted(doc.items, key=lambda it: (it.skill, it.external_id))
    if any(it.difficulty is None for it in items):
        missing = [it.external_id for it in items if it.difficulty is None]
        raise SystemExit(f"items without a difficulty level: {missing}")
    b_level = np.array([level_to_b(it.difficulty) for it in items])
    true = Bank.from_params(
        ItemParams(it.external_id, "2pl", float(np.exp(rng.normal(0.0, A_LOG_SD))),
                   float(b_level[k] + rng.normal(0.0, B_JITTER_SD)), skill=it.skill)
        for k, it in enumerate(items))
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
    specs = [ItemSpec(it.external_id, "2pl", it.skill) for it in items]
    fit = MMLCalibrator("2pl").fit(data, specs)
    est = fit.items_
    order = [est.index(iid) for iid in true.item_ids]
    se_a, se_b = fit.se_.a[order], fit.se_.b[order]

    def fmt(x: float) -> str:
        return "" if not np.isfinite(x) else f"{x:.4f}"

    calibrated = Bank.from_params(
        ItemParams(p.item_id, "2pl", round(p.a, 4), round(p.b, 4), skill=p.skill)
        for p in (est.params()[k] for k in order))
    write_items_csv(args.out, calibrated, {
        "se_a": [fmt(v) for v in se_a], "se_b": [fmt(v) for v in se_b],
        "n_responses": [str(int(n)) for n in fit.n_responses_[order]],
        "provisional": ["true"] * len(items),
        "level": [str(it.difficulty) for it in items],
    })
    r_b = float(np.corrcoef(calibrated.b, true.b)[0, 1])
    rmse_b = float(np.sqrt(np.mean((calibrated.b - true.b) ** 2)))
    r_a = float(np.corrcoef(calibrated.a, true.a)[0, 1])
    print(f"{len(items)} items in {len(skills)} skills, {data.n_responses} simulated responses "
          f"of {args.persons} simulees (seed {args.seed}); converged={fit.converged_} "
          f"after {fit.n_iter_} cycles")
    print(f"recovery of the generating values: corr(b) = {r_b:.3f}, RMSE(b) = {rmse_b:.3f}, "
          f"corr(a) = {r_a:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
