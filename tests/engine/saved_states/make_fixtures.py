"""Writes the saved-session fixtures of `test_saved_states.py`.

Run once with the engine of commit 37ab8c6 (before issue 13 rewrote engine/), from the repo root:
``PYTHONPATH=. python tests/engine/saved_states/make_fixtures.py``. Each fixture holds the
blueprint JSON, the pool facts, the answers (per bank position), a state saved mid-test and the
state that engine reached at the end of the test; the banks are rebuilt from `irt` generators
(deterministic), so only plain values are stored. Kept for the record: re-running it with a later
engine would overwrite what "stored by the old version" means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import engine
import irt

HERE = Path(__file__).parent


def mixed_bank() -> irt.Bank:
    banks = (irt.generate_items(40, "2pl", 1, skill="api", prefix="api"),
             irt.generate_items(25, "3pl", 2, skill="db", prefix="db3_"),
             irt.generate_items(15, "grm", 3, skill="db", prefix="dbg_", n_categories=4),
             irt.generate_items(20, "gpcm", 4, skill="sec", prefix="secp", n_categories=3),
             irt.generate_items(20, "2pl", 5, skill="sec", prefix="sec2_"))
    return irt.Bank.from_params([p for b in banks for p in b.params()])


def pool_facts(bank: irt.Bank) -> dict:
    ids = bank.item_ids
    status = ["operational"] * len(ids)
    for k in (5, 47, 90):
        status[k] = "retired"
    for k in (10, 60, 110):
        status[k] = "pretest"
    return {"status": status, "enemy_groups": [[ids[0], ids[1], ids[2]], [ids[40], ids[41]]],
            "tags": {ids[7]: ["leaked"]}, "exposure_rates": {ids[0]: 0.5, ids[3]: 0.3}}


SKILLS = [{"skill": "api", "min_items": 3, "max_items": 8, "weight": 2.0},
          {"skill": "db", "min_items": 2, "max_items": 6, "weight": 1.0},
          {"skill": "sec", "min_items": 2, "max_items": 5, "weight": 1.0}]
BASE = {"skills": SKILLS, "min_items": 10, "max_items": 16, "exclude_tags": ["leaked"],
        "seed": 11}
CASES = {
    "mfi_se_pretest": {**BASE, "se_target": 0.4, "pretest_count": 2,
                       "pretest_positions": [2, 5]},
    "kl_randomesque": {**BASE, "se_target": 0.4, "selector": {"name": "kl", "width": 3.0,
                                                                "switch_after": 4},
                       "exposure": {"name": "randomesque", "k": 4}},
    "mpwi_sprt": {**BASE, "se_target": None, "selector": {"name": "mpwi"},
                  "classification": {"cut": 0.2, "method": "sprt", "alpha": 0.05,
                                     "beta": 0.05, "delta": 0.4, "level": 0.95}},
    "astrat_ci_sh": {**BASE, "se_target": 0.25, "selector": {"name": "astrat", "n_strata": 3},
                     "exposure": {"name": "sympson_hetter",
                                  "parameters": {"api0001": 0.3, "sec2_0003": 0.2}},
                     "classification": {"cut": {"api": 0.0, "db": 0.5}, "method": "ci",
                                        "alpha": 0.05, "beta": 0.05, "delta": 0.3,
                                        "level": 0.9}},
    "mcat_correlated": {**BASE, "se_target": 0.35, "pretest_count": 1,
                        "pretest_positions": [3],
                        "correlations": [[1.0, 0.6, 0.4], [0.6, 1.0, 0.5], [0.4, 0.5, 1.0]]},
    "shadow": {**BASE, "se_target": None, "max_items": 12, "min_items": 12,
               "selector": {"name": "shadow", "tag_counts": {}, "max_exposure": None},
               "pretest_count": 1, "pretest_positions": [4]},
}


def main() -> None:
    bank = mixed_bank()
    facts = pool_facts(bank)
    pool = engine.ItemPool(bank, **facts)
    g = np.random.default_rng(13)
    for name, bp_dict in CASES.items():
        bp = engine.Blueprint.from_dict(bp_dict)
        eng = engine.make_engine(pool, bp)
        theta = g.normal(size=(1, len(eng.skill_names)))
        answers = np.zeros(len(bank), dtype=int)
        for k, s in enumerate(eng.skill_names):
            idx = bank.skill_indices(s)
            answers[idx] = irt.simulate_responses(theta[:, k], bank.take(idx), g)[0]
        state = eng.start(seed=1234 + len(name))
        saved = None
        while state.stop_reason is None:
            item = state.pending
            state = eng.record(state, item, int(answers[pool.index(item)]))
            if len(state.events) == 5:
                saved = state.to_dict()
        out = {"blueprint": bp.to_dict(), "pool": facts, "answers": answers.tolist(),
               "saved": saved, "final": state.to_dict(),
               "estimates": {s: [e.theta, e.se, e.n_items]
                             for s, e in eng.estimates(state).items()}}
        (HERE / f"{name}.json").write_text(json.dumps(out, indent=1, sort_keys=True),
                                           encoding="utf-8")
        print(name, type(eng).__name__, len(state.events), state.stop_reason)


if __name__ == "__main__":
    main()
