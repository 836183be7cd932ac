"""What a psychometrician waits for: the whole ``proficio calibrate`` process on a long CSV,
against PyPI ``mirt``'s whole process on the same file, in one run.

Each contender runs as its own child process, timed from the parent (interpreter start-up,
imports, reading the CSV, the fit, standard errors, writing the estimates); peak memory is the
child's ``ru_maxrss``. Cases:

* ``2pl``: 2PL, 100 items × 20,000 persons, complete (2,000,000 rows).
* ``sparse``: 2PL, 1,000 items × 100,000 persons, 30 random items each (3,000,000 rows);
  Proficio only (mirt needs a dense 100,000 × 1,000 matrix).

PyPI mirt's script reads the same CSV with Arrow (the fastest reader available to it), pivots it
into the dense matrix mirt takes, fits with 41 nodes and SQUAREM (its fastest setting), with
standard errors, and writes the estimates.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_whole_process.py \\
        [--cases 2pl,sparse] [--repeats 3] [--compare DIR] [--bytecode]

The contenders take turns, one run each per round, so a change of load hits them alike.
``--compare DIR`` adds ``proficio calibrate`` of another checkout (e.g. ``git archive REV`` unpacked
in a temporary folder), run with ``PYTHONPATH=DIR``. The children inherit the environment; with
``PYTHONDONTWRITEBYTECODE=1`` set there, Proficio's own modules are compiled from source in every
run (the installed packages ship bytecode). ``--bytecode`` lets the children cache bytecode in a
temporary ``PYTHONPYCACHEPREFIX`` (the first round compiles), as an installed Proficio would.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROFICIO = [sys.executable, "-m", "web.cli"]

MIRT_SCRIPT = """
import sys, warnings
import numpy as np
from pyarrow import csv as pacsv
import mirt
warnings.filterwarnings("ignore")
table = pacsv.read_csv(sys.argv[1])
persons = table.column("person_id").combine_chunks().dictionary_encode()
items = table.column("item_id").combine_chunks().dictionary_encode()
x = np.full((len(persons.dictionary), len(items.dictionary)), np.nan)
x[persons.indices.to_numpy(), items.indices.to_numpy()] = table.column("response").to_numpy()
res = mirt.fit_mirt(x, model="2PL", n_quadpts=41, accelerate="squarem",
                    compute_standard_errors=True)
pars = res.model.parameters
a = np.asarray(pars["discrimination"], dtype=float).ravel()
b = np.asarray(pars["difficulty"], dtype=float).ravel()
with open(sys.argv[2], "w") as f:
    f.write("item_id,a,b\\n")
    for k, name in enumerate(items.dictionary.to_pylist()):
        f.write(f"{name},{a[k]:.6f},{b[k]:.6f}\\n")
"""


def make_csv(case: str, folder: Path) -> Path:
    import numpy as np

    import irt
    from irt.io import write_responses_csv

    rng = np.random.default_rng(20261204)
    if case == "2pl":
        n_items, n_persons = 100, 20_000
        bank = irt.generate_items(n_items, "2pl", rng)
        data = irt.SparseResponses.from_dense(
            irt.simulate_responses(rng.normal(size=n_persons), bank, rng))
    else:
        n_items, n_persons, per = 1_000, 100_000, 30
        bank = irt.generate_items(n_items, "2pl", rng)
        data = irt.simulate_sparse_responses(rng.normal(size=n_persons), bank, per, rng)
    path = folder / f"{case}.csv"
    write_responses_csv(path, [f"p{k}" for k in range(n_persons)],
                        [f"i{k}" for k in range(n_items)], data)
    return path


def timed(cmd: list[str], root: Path = ROOT, env: dict[str, str] | None = None
          ) -> tuple[float, float]:
    """Wall time and peak RSS (MiB, this child's own ``ru_maxrss`` from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
                            env={**(env or os.environ), "PYTHONPATH": str(root)})
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed with status {proc.returncode}")
    return took, usage.ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="2pl,sparse")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", metavar="DIR", type=Path,
                    help="also time `proficio calibrate` of the checkout in DIR")
    ap.add_argument("--bytecode", action="store_true",
                    help="children cache bytecode (in a temporary PYTHONPYCACHEPREFIX)")
    ap.add_argument("--make", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        make_csv(args.make[0], Path(args.make[1]))
        return 0
    print(f"threads: OMP={os.environ['OMP_NUM_THREADS']}; best of {args.repeats} runs each, "
          f"contenders in turn; bytecode {'cached' if args.bytecode else 'as inherited'}")
    print("| case | contender | whole process (s) | ratio to Proficio | peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = dict(os.environ)
        if args.bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        for case in args.cases.split(","):
            # made in a child so this parent stays small: a forked child's ru_maxrss starts
            # from the parent's high-water mark
            subprocess.run([sys.executable, __file__, "--make", case, str(folder)], check=True,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            csv_path = folder / f"{case}.csv"
            out = folder / "items.csv"
            calibrate = ["calibrate", str(csv_path), "--model", "2pl", "--out", str(out), "--quiet"]
            contenders: dict[str, tuple[list[str], Path]] = {
                "proficio calibrate (with SEs)": ([*PROFICIO, *calibrate], ROOT)}
            if args.compare:
                contenders[f"proficio calibrate of {args.compare}"] = (
                    [*PROFICIO, *calibrate], args.compare.resolve())
            if case == "2pl":
                contenders["PyPI mirt (41 nodes + SQUAREM, with SEs)"] = (
                    [sys.executable, "-c", MIRT_SCRIPT, str(csv_path), str(out)], ROOT)
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
            for _ in range(args.repeats):
                for name, (cmd, root) in contenders.items():
                    runs[name].append(timed(cmd, root, env))
            ref = None
            for name, got in runs.items():
                best, peak = min(r[0] for r in got), max(r[1] for r in got)
                ref = ref or best
                print(f"| {case} | {name} | {best:.2f} | {best / ref:.2f} | {peak:.0f} |",
                      flush=True)
        helps = [timed([*PROFICIO, "--help"], ROOT, env) for _ in range(5)]
        print(f"| – | `proficio --help` | {min(h[0] for h in helps):.3f} | | "
              f"{max(h[1] for h in helps):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
