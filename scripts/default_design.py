"""The default assessment design for the shipped Back-End Engineer bank, with its exposure
control tuned and its feasibility measured (reproducible; seeded).

    .venv/bin/python scripts/default_design.py

Writes ``item_bank/data/backend_engineer/default_design.json``: the blueprint
(`web.services.feasibility.default_blueprint` over every skill, with Sympson–Hetter parameters
from `tune_exposure` for the provisional population N(0, I)) and the `Feasibility` figures of
`check_design` on 2,000 simulees. The demo and `proficio assessment create` on the shipped bank
use it as is; a bank with other parameters is tuned and checked when its assessment is created.
Re-run it whenever parameters.csv changes (a test checks that the file matches the bank).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import ItemPool  # noqa: E402
from irt.io import read_items_csv  # noqa: E402
from item_bank.shipped import DEFAULT_DESIGN, PROVISIONAL_PARAMETERS  # noqa: E402
from web.services.feasibility import (  # noqa: E402
    PROVISIONAL_SOURCE,
    Population,
    check_design,
    default_blueprint,
    tune_exposure,
)

CHECK_SIMULEES = 2000


def main() -> int:
    bank = read_items_csv(PROVISIONAL_PARAMETERS).bank
    skills = sorted(set(bank.skills))
    pool = ItemPool(bank)
    population = Population.standard(skills, PROVISIONAL_SOURCE)
    blueprint = tune_exposure(pool, default_blueprint(skills), population)
    feasibility = check_design(pool, blueprint, population, n=CHECK_SIMULEES)
    DEFAULT_DESIGN.write_text(json.dumps({"blueprint": blueprint.to_dict(),
                                          "feasibility": feasibility.to_dict()},
                                         indent=1, sort_keys=True) + "\n")
    print(f"wrote {DEFAULT_DESIGN.relative_to(ROOT)}: length "
          f"{feasibility.length_p10:.0f}–{feasibility.length_p90:.0f} (median "
          f"{feasibility.length_median:.0f}, max {feasibility.max_items}), overall SE "
          f"{feasibility.overall_se:.3f}, coverage {feasibility.overall_coverage:.3f}, max "
          f"exposure {feasibility.max_exposure:.2f}, overlap {feasibility.overlap:.3f}")
    for w in feasibility.warnings:
        print("warning:", w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
