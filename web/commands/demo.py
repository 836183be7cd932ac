"""``proficio demo``: until the web front lands, a short adaptive test simulated in the terminal.

It draws a 200-item 2PL bank and one simulee, then administers items by maximum Fisher
information at the current EAP estimate until the posterior SD falls to 0.3 (or 30 items),
printing θ̂ and its SE after every answer.
"""

from __future__ import annotations

import argparse

import numpy as np

import irt


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the demo (for now: a simulated adaptive test)")
    p.add_argument("--port", type=int, default=5000, help="reserved for the web demo")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--theta", type=float, default=0.8, help="the simulee's true ability")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    bank = irt.generate_items(200, "2pl", rng)
    given: list[int] = []
    answers: list[int] = []
    theta, se = 0.0, 1.0
    print(f"Simulated candidate with true θ = {args.theta:+.2f}; 200-item 2PL bank")
    print(f"{'#':>3} {'item':>6} {'a':>5} {'b':>6} {'answer':>6} {'θ̂':>7} {'SE':>5}")
    while se > 0.3 and len(given) < 30:
        info = irt.item_information(theta, bank)[0]
        info[given] = -np.inf
        item = int(np.argmax(info))
        p = float(irt.probability(args.theta, bank.take([item]))[0, 0])
        given.append(item)
        answers.append(int(rng.random() < p))
        est = irt.eap(np.array([answers]), bank.take(given))
        theta, se = float(est.theta[0]), float(est.se[0])
        print(f"{len(given):>3} {bank.item_ids[item]:>6} {bank.a[item]:5.2f} {bank.b[item]:+6.2f}"
              f" {answers[-1]:>6} {theta:+7.3f} {se:5.3f}")
    print(f"Stopped after {len(given)} items: θ̂ = {theta:+.3f} ± {se:.3f}")
    return 0
