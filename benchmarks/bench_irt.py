"""IRT core speed: EAP scoring of many persons and information of a large bank at one θ.

Runs Proficio and the peers on the same data in one process with the same thread settings and
prints the times and the peer/Proficio ratio.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_irt.py [--persons 100000] [--items 40]

Peers: girth ``ability_eap`` (same 61-node grid on ±6) and catsim ``irt.inf`` (per item, a Python
loop) and ``irt.inf_hpc`` (vectorized with numexpr).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import irt  # noqa: E402


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--bank", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    threads = os.environ["OMP_NUM_THREADS"]

    rng = np.random.default_rng(20261128)
    bank = irt.generate_items(args.items, "2pl", rng)
    theta = rng.normal(size=args.persons)
    x = irt.simulate_responses(theta, bank, rng)
    print(f"EAP scoring: {args.persons:,} persons x {args.items} items, 61 nodes, "
          f"{threads} thread(s)")
    quad = irt.normal_grid(61, 0.0, 1.0, 6.0)
    t_ours, est = best_of(lambda: irt.eap(x, bank, quadrature=quad), args.repeat)
    rmse = np.sqrt(np.mean((est.theta - theta) ** 2))
    print(f"  proficio irt.eap      {t_ours * 1e3:9.1f} ms  (theta and posterior SD) "
          f"RMSE {rmse:.4f}")
    try:
        import girth

        opts = {"quadrature_n": 61, "quadrature_bounds": (-6, 6)}
        t_girth, g_theta = best_of(
            lambda: girth.ability_eap(x.T, bank.b, bank.a, options=opts), args.repeat)
        diff = np.max(np.abs(np.asarray(g_theta) - est.theta))
        print(f"  girth ability_eap     {t_girth * 1e3:9.1f} ms  (theta only)  "
              f"ratio girth/proficio = {t_girth / t_ours:.1f}x; max |Δθ| = {diff:.1e}")
    except ImportError:
        print("  girth not installed")

    big = irt.generate_items(args.bank, "3pl", rng)
    t0 = 0.7
    print(f"\nItem information: {args.bank:,}-item 3PL bank at one theta")
    reps = 200
    t_info, info = best_of(lambda: [irt.item_information(t0, big) for _ in range(reps)], 3)
    t_info /= reps
    print(f"  proficio item_information {t_info * 1e6:9.1f} us")
    try:
        from catsim import irt as cirt

        items = np.column_stack([big.a, big.b, big.c, big.d])
        t_hpc, c_info = best_of(lambda: [cirt.inf_hpc(t0, items) for _ in range(reps)], 3)
        t_hpc /= reps
        ref = info[0][0]
        print(f"  catsim inf_hpc            {t_hpc * 1e6:9.1f} us  ratio {t_hpc / t_info:.1f}x; "
              f"max |Δ| = {np.max(np.abs(c_info[0] - ref)):.1e}")
        t_loop, _ = best_of(lambda: [cirt.inf(t0, *row) for row in items], 1)
        print(f"  catsim inf (per item)     {t_loop * 1e6:9.1f} us  ratio {t_loop / t_info:.1f}x")
    except ImportError:
        print("  catsim not installed")


if __name__ == "__main__":
    main()
