"""Replay study (issue 21): N simulated live sessions of each engine kind — unidimensional EAP
per skill (Kingsbury–Zara balancing, pretest slots), multidimensional MAP with correlated skills,
shadow test — each stored as JSON between answers as the web does, then replayed by a fresh
engine (`engine.replay.replay`): the largest |Δθ|, |ΔSE| over every answer and the final
estimates, and the share of served items (with their audit) the replay reproduces.

    PYTHONPATH=. python benchmarks/bench_replay.py [--sessions 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

import engine
import irt
from engine.replay import TOLERANCE, replay

FIXTURES = Path(__file__).parent.parent / "tests" / "engine" / "saved_states" / "make_fixtures.py"
KINDS = {"unidimensional EAP": "mfi_se_pretest", "multidimensional MAP (correlated)":
         "mcat_correlated", "shadow test": "shadow"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1000)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES)
    fix = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(fix)  # type: ignore[union-attr]
    bank = fix.mixed_bank()
    facts = fix.pool_facts(bank)
    print(f"{'engine kind':36s} {'sessions':>8s} {'items':>7s} {'reproduced':>10s} "
          f"{'max |Δθ|,|ΔSE|':>15s} {'max Δ final':>12s} {'live s':>7s} {'replay s':>8s}")
    failed = False
    for label, case in KINDS.items():
        bp_json = engine.Blueprint.from_dict(fix.CASES[case]).to_json()
        live = engine.make_engine(engine.ItemPool(bank, **facts),
                                  engine.Blueprint.from_json(bp_json))
        fresh = engine.make_engine(engine.ItemPool(fix.mixed_bank(), **facts),
                                   engine.Blueprint.from_json(bp_json))
        g = np.random.default_rng(2021)
        thetas = g.multivariate_normal(np.zeros(3), np.eye(3) * 0.5 + 0.5, size=args.sessions)
        stored = []
        t0 = time.perf_counter()
        for n in range(args.sessions):
            theta = thetas[n][live.skill_pos.clip(0)]
            state = live.start(seed=n)
            while live.finished(state) is None:
                item = live.next_item(state)
                i = live.pool.index(item)
                p = irt.category_probabilities([theta[i]], live.pool.bank.take([i]))[0, 0]
                x = int(g.choice(p.size, p=p / p.sum()))
                state = engine.CatState.from_json(live.record(state, item, x).to_json())
            stored.append((state, live.estimates(state)))
        t_live = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_items = n_ok = 0
        worst = worst_final = 0.0
        for state, final in stored:
            rep = replay(fresh, state)
            n_items += len(rep.steps)
            n_ok += sum(s.item_reproduced for s in rep.steps)
            worst = max(worst, rep.max_trajectory_difference)
            for s, est in rep.estimates.items():
                worst_final = max(worst_final, abs(est.theta - final[s].theta),
                                  abs(est.se - final[s].se))
        t_replay = time.perf_counter() - t0
        failed |= n_ok != n_items or max(worst, worst_final) > TOLERANCE
        print(f"{label:36s} {len(stored):8d} {n_items:7d} {n_ok / n_items:10.2%} "
              f"{worst:15.3g} {worst_final:12.3g} {t_live:7.1f} {t_replay:8.1f}")
    print("FAILED" if failed else f"every session re-scores to {TOLERANCE:g} and every served "
          "item is reproduced")


if __name__ == "__main__":
    main()
