"""CAT engine benchmark: Proficio against catsim and PyPI ``mirt`` on identical pre-drawn answers.

Setup (issue 5): a 500-item 2PL bank (a ~ |N(1.2, 0.25)|, b ~ N(0, 1): the distributions of
Barrada et al. 2010 that catsim's generator uses), 1,000 simulees θ ~ N(0, 1), start θ = 0,
maximum Fisher information, stop at SE ≤ 0.3 or 40 items. Every engine answers from the same
answer matrix (simulee × item, drawn once from the model), except mirt's Rust batch simulator,
which draws its own responses (it takes no answer matrix).

Engines and what is timed per step (one response: update + stop check + select):

* Proficio ``CatEngine.record`` (live, immutable state; EAP on 81 nodes, incremental);
* Proficio ``engine.simulation.simulate`` (all simulees together): total time / items given;
* catsim 0.21 (``NumericalSearchEstimator`` ML with Dodd's heuristic, ``MinErrorStopper``,
  ``MaxInfoSelector``), driven item by item;
* mirt ``CATEngine`` (EAP, its default 21 Gauss–Hermite points), ``administer_item`` per step;
* mirt ``run_batch_simulation`` (Rust): total time / items given.

Also: the random fixed form of equal RMSE (averaged over several random forms), the live speed
with a 5,000-item bank, and exposure control (randomesque k = 5; Sympson–Hetter r_max = 0.25)
with its length cost.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python
benchmarks/bench_cat.py [--quick]``. The script prints (it is a script, not library code).

``--compare REV`` (issue 13) measures this engine and the one of commit ``REV`` side by side in
one run: ``irt/`` and ``engine/`` of ``REV`` are exported with ``git archive`` into a temporary
folder, and the step figures (live ``record`` median, batch µs per item, and the engine time of
answer 1 and answer 48 of a session reloaded from JSON before every answer, as the web tier
does) are taken alternately in child processes importing one engine or the other.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import engine  # noqa: E402
import irt  # noqa: E402
from engine.simulation import (  # noqa: E402
    simulate,
    simulate_fixed_form,
    summarize,
    tune_sympson_hetter,
)

SE_TARGET, MAX_ITEMS = 0.3, 40
#: The engine before issue 13 (four copies of the step), the default of ``--compare``.
PREVIOUS = "37ab8c6"
ROOT = Path(__file__).resolve().parents[1]


def export_engine(rev: str, dest: Path) -> None:
    """``irt/`` and ``engine/`` of commit ``rev`` into ``dest`` (``git archive``)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "irt", "engine"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def side_by_side(script: str, rev: str, rounds: int, extra: list[str]) -> dict[str, list[dict]]:
    """Run ``script --figures-json`` alternately against the engine of ``rev`` and this one."""
    out: dict[str, list[dict]] = {"previous": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        export_engine(rev, Path(tmp))
        for _ in range(rounds):
            for name, path in (("previous", tmp), ("current", str(ROOT))):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, str(ROOT)])}
                res = subprocess.run([sys.executable, script, "--figures-json", *extra],
                                     env=env, check=True, capture_output=True, text=True)
                out[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def print_side_by_side(figs: dict[str, list[dict]], labels: dict[str, str], rev: str) -> None:
    print(f"\nSide by side with commit {rev} ({len(figs['current'])} alternating rounds, medians "
          f"of the rounds; engine imported from: {figs['current'][0]['engine']} vs "
          f"{figs['previous'][0]['engine']})\n")
    print(f"| figure | {rev} | this commit | this / {rev} |")
    print("|---|---|---|---|")
    for key, label in labels.items():
        prev = float(np.median([f[key] for f in figs["previous"]]))
        cur = float(np.median([f[key] for f in figs["current"]]))
        print(f"| {label} | {prev:.1f} | {cur:.1f} | {cur / prev:.2f} |")


def step_figures(n: int, default_design: str | None = None) -> dict[str, float | str]:
    """The engine's step figures on the benchmark bank (works with either engine version);
    with ``default_design`` (a blueprint's JSON) also the default assessment's step."""
    bank = make_bank(500, 2026)
    g = np.random.default_rng(5)
    theta = g.normal(size=n)
    answers = irt.simulate_responses(theta, bank, g).astype(np.int8)
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS))
    steps = []
    for p in range(n):
        state = eng.start(seed=p)
        while state.stop_reason is None:
            item = state.pending
            x = int(answers[p, eng.pool.index(item)])
            t0 = time.perf_counter()
            state = eng.record(state, item, x)
            steps.append(time.perf_counter() - t0)
    simulate(eng, theta[:20], answers=answers[:20])
    t0 = time.perf_counter()
    res = simulate(eng, theta, answers=answers)
    batch = (time.perf_counter() - t0) / res.n_items.sum()
    # answer 1 and answer 48 of a 48-item test, the state reloaded from JSON before each answer
    # (the live flow: the state lives in the database); engine time = record on the new state
    long = engine.CatEngine(bank, engine.Blueprint(se_target=None, max_items=48))
    first, last = [], []
    for p in range(min(n, 200)):
        state = long.start(seed=p)
        for k in range(48):
            item = state.pending
            x = int(answers[p, long.pool.index(item)])
            fresh = engine.CatState.from_json(state.to_json())
            t0 = time.perf_counter()
            state = long.record(fresh, item, x)
            dt = time.perf_counter() - t0
            if k == 0:
                first.append(dt)
            elif k == 47:
                last.append(dt)
    out = {"engine": str(Path(engine.__file__).parent), "live_us": float(np.median(steps)) * 1e6,
           "batch_us": float(batch) * 1e6, "answer1_us": float(np.median(first)) * 1e6,
           "answer48_us": float(np.median(last)) * 1e6}
    if default_design is not None:
        try:
            out["default_us"] = default_step(default_design, min(n, 200))
        except Exception:  # an engine from before the default design's strategies
            out["default_us"] = float("nan")
    return out


def default_design_json() -> str:
    """The default assessment's blueprint on the shipped Back-End Engineer bank (issue 14:
    c-optimal selection for the overall score, minimums first, Sympson–Hetter tuned with a
    progressive start, composite-SE stop), as JSON, tuned once by this tree's code."""
    from engine import ItemPool
    from irt.io import read_items_csv
    from item_bank.shipped import PROVISIONAL_PARAMETERS
    from web.services.feasibility import Population, default_blueprint, tune_exposure

    bank = read_items_csv(PROVISIONAL_PARAMETERS).bank
    skills = sorted(set(bank.skills))
    return tune_exposure(ItemPool(bank), default_blueprint(skills),
                         Population.standard(skills, "N(0, I)")).to_json()


def default_step(blueprint_json: str, n: int) -> float:
    """Median µs of `record` in the default design on the shipped bank, ``n`` sessions with
    answers drawn from the 3PL at θ ~ N(0, I) (the same draws for either engine)."""
    from irt.io import read_items_csv
    from item_bank.shipped import PROVISIONAL_PARAMETERS

    bank = read_items_csv(PROVISIONAL_PARAMETERS).bank
    eng = engine.CatEngine(bank, engine.Blueprint.from_json(blueprint_json))
    g = np.random.default_rng(14)
    theta = g.normal(size=(n, len(eng.skill_names)))
    steps = []
    for p in range(n):
        state = eng.start(seed=p)
        while state.pending is not None:
            i = eng.pool.index(state.pending)
            k = eng.skill_names.index(bank.skills[i])
            prob = bank.c[i] + (bank.d[i] - bank.c[i]) / (1 + np.exp(-bank.a[i] * (
                theta[p, k] - bank.b[i])))
            t0 = time.perf_counter()
            state = eng.record(state, state.pending, int(g.random() < prob))
            steps.append(time.perf_counter() - t0)
    return float(np.median(steps)) * 1e6


STEP_LABELS = {"live_us": "live step (`record`, state in memory), median µs",
               "batch_us": "batch simulation, µs per administered item",
               "answer1_us": "answer 1, state reloaded from JSON, engine µs (median)",
               "answer48_us": "answer 48, state reloaded from JSON, engine µs (median)",
               "default_us": "default assessment (shipped bank, 8 skills), `record` median µs"}


def make_bank(n_items: int, seed: int) -> irt.Bank:
    g = np.random.default_rng(seed)
    return irt.Bank.dichotomous(np.abs(g.normal(1.2, 0.25, n_items)), g.normal(0, 1, n_items))


def rmse(est, true) -> float:
    return float(np.sqrt(np.mean((np.asarray(est) - np.asarray(true)) ** 2)))


class Timer:
    """Per-step wall-clock and thread CPU time (CPU time is robust to other processes)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self):
        self._c = time.thread_time()
        self._w = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.thread_time() - self._c)
        return False

    def us(self) -> tuple[float, float, float]:
        """Median wall, median CPU and mean wall time in µs."""
        return (float(np.median(self.wall) * 1e6), float(np.median(self.cpu) * 1e6),
                float(np.mean(self.wall) * 1e6))


def proficio_session(eng, p, answers, timer):
    state = eng.start(seed=engine.derive_seed(0, p))
    index = eng.pool.index
    while state.stop_reason is None:
        item = state.pending
        x = int(answers[index(item)])
        with timer:
            state = eng.record(state, item, x)
    e = eng.estimates(state)["default"]
    return e.theta, e.n_items, [index(ev.item_id) for ev in state.events]


class Catsim:
    def __init__(self, bank):
        from catsim.estimation.numerical import NumericalSearchEstimator
        from catsim.item_bank import ItemBank
        from catsim.selection.selection import MaxInfoSelector
        from catsim.stopping.stopping import MinErrorStopper

        items = np.column_stack([bank.a, bank.b, np.zeros(len(bank)), np.ones(len(bank))])
        self.ib = ItemBank(items)
        self.est = NumericalSearchEstimator(dodd=True)
        self.sel = MaxInfoSelector()
        self.stop = MinErrorStopper(SE_TARGET, max_items=MAX_ITEMS)

    def session(self, answers, timer):
        ib, administered, responses, t_hat = self.ib, [], [], 0.0
        item = self.sel.select(item_bank=ib, administered_items=administered, est_theta=t_hat)
        while True:
            administered.append(item)
            responses.append(bool(answers[item]))
            with timer:
                t_hat = self.est.estimate(item_bank=ib, administered_items=administered,
                                          response_vector=responses, est_theta=t_hat)
                done = self.stop.stop(administered_items=ib.get_items(administered),
                                      theta=t_hat)
                if not done:
                    item = self.sel.select(item_bank=ib, administered_items=administered,
                                           est_theta=t_hat)
            if done:
                return t_hat, len(administered)


def mirt_model(bank):
    from mirt.models.dichotomous import TwoParameterLogistic

    m = TwoParameterLogistic(n_items=len(bank))
    m.set_parameters(discrimination=bank.a.copy(), difficulty=bank.b.copy())
    # mirt has no public constructor for known parameters; CATEngine requires a fitted model
    m._is_fitted = True
    return m


class MirtEngine:
    def __init__(self, bank):
        from mirt.cat import CATEngine

        self.cat = CATEngine(mirt_model(bank), se_threshold=SE_TARGET, max_items=MAX_ITEMS,
                             seed=0)

    def session(self, answers, timer):
        cat = self.cat
        cat.reset()
        state = cat.get_current_state()
        while not state.is_complete:
            x = int(answers[state.next_item])
            with timer:
                state = cat.administer_item(x)
        return state.theta, state.n_items


def run_live(bank, theta, answers, peers: bool):
    """Sessions interleaved simulee by simulee, so every engine sees the same machine load."""
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS))
    out = {"proficio": ([], [], Timer(), [])}
    others = {"catsim": Catsim(bank), "mirt": MirtEngine(bank)} if peers else {}
    for k in others:
        out[k] = ([], [], Timer(), None)
    for p in range(len(theta)):
        est, n, items = proficio_session(eng, p, answers[p], out["proficio"][2])
        out["proficio"][0].append(est)
        out["proficio"][1].append(n)
        out["proficio"][3].append(items)
        for k, peer in others.items():
            est, n = peer.session(answers[p], out[k][2])
            out[k][0].append(est)
            out[k][1].append(n)
    return out


def run_batches(bank, theta, answers, reps: int):
    """Proficio's batch simulator and mirt's Rust batch, alternated ``reps`` times."""
    from mirt.cat import CATEngine

    eng = engine.CatEngine(bank, engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS))
    cat = CATEngine(mirt_model(bank), se_threshold=SE_TARGET, max_items=MAX_ITEMS, seed=0)
    simulate(eng, theta[:50], answers=answers[:50])  # warm-ups
    cat.run_batch_simulation(theta[:50])
    times: dict[str, list[tuple[float, float]]] = {"proficio": [], "mirt": []}
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        res = simulate(eng, theta, answers=answers)
        times["proficio"].append((time.perf_counter() - w, time.process_time() - c))
        w, c = time.perf_counter(), time.process_time()
        mres = cat.run_batch_simulation(theta)
        times["mirt"].append((time.perf_counter() - w, time.process_time() - c))
    return res, mres, times


def run_exposure(bank, theta, answers, exposure):
    bp = engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS, exposure=exposure)
    return simulate(engine.CatEngine(bank, bp), theta, answers=answers)


def fixed_form_curve(bank, theta, answers, lengths, n_forms):
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=None, max_items=max(lengths)))
    out = {}
    for L in lengths:
        vals = [summarize(simulate_fixed_form(eng, theta, L, answers=answers, rng=100 + f))
                .skills[0].rmse for f in range(n_forms)]
        out[L] = float(np.mean(vals))
    return out


def equal_rmse_length(curve: dict[int, float], target: float) -> float:
    """Length where the fixed-form RMSE curve crosses ``target`` (linear interpolation)."""
    ls = sorted(curve)
    for lo, hi in itertools.pairwise(ls):
        if curve[lo] >= target >= curve[hi]:
            return lo + (curve[lo] - target) / (curve[lo] - curve[hi]) * (hi - lo)
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200 simulees, no catsim/mirt engine")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the batch runs")
    ap.add_argument("--compare", metavar="REV", nargs="?", const=PREVIOUS,
                    help=f"only the step figures, side by side with commit REV (default "
                         f"{PREVIOUS}, the engine before issue 13)")
    ap.add_argument("--rounds", type=int, default=3, help="--compare: alternating rounds")
    ap.add_argument("--figures-json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--default-design", help=argparse.SUPPRESS)  # a blueprint JSON file
    args = ap.parse_args()
    if args.figures_json:
        design = (Path(args.default_design).read_text() if args.default_design else None)
        print(json.dumps(step_figures(args.n, design)))
        return
    if args.compare:
        print(f"500-item 2PL bank, {args.n} simulees, MFI, SE <= {SE_TARGET} or {MAX_ITEMS} items"
              f"; and the default assessment on the shipped bank, {min(args.n, 200)} sessions "
              f"(load average at start: {os.getloadavg()[0]:.1f})")
        with tempfile.NamedTemporaryFile("w", suffix=".json") as design:
            design.write(default_design_json())
            design.flush()
            figs = side_by_side(__file__, args.compare, args.rounds,
                                ["--n", str(args.n), "--default-design", design.name])
        print_side_by_side(figs, STEP_LABELS, args.compare)
        return
    n = 200 if args.quick else args.n
    warnings.simplefilter("ignore")
    bank = make_bank(500, 2026)
    g = np.random.default_rng(5)
    theta = g.normal(size=n)
    answers = irt.simulate_responses(theta, bank, g).astype(np.int8)
    print(f"500-item 2PL bank, {n} simulees, start 0, MFI, SE <= {SE_TARGET} or {MAX_ITEMS} "
          f"items; identical pre-drawn answers; threads pinned to 1; shared 2-core machine "
          f"(load average at start: {os.getloadavg()[0]:.1f})")

    live = run_live(bank, theta, answers, peers=not args.quick)
    res, mres, times = run_batches(bank, theta, answers, args.reps)
    same = (np.array_equal(res.theta_hat[:, 0], live["proficio"][0])
            and all(list(res.items[p, : len(live["proficio"][3][p])]) == live["proficio"][3][p]
                    for p in range(n)))
    names = {"proficio": "Proficio CatEngine.record (live; EAP, 81 nodes)",
             "catsim": "catsim 0.21 (ML + Dodd)", "mirt": "mirt CATEngine (EAP, 21 GH points)"}
    print("\nLive sessions, interleaved simulee by simulee (µs per step: update + stop check + "
          "select)\n")
    print("| engine | mean length | θ RMSE | median wall µs | median CPU µs | mean wall µs |")
    print("|---|---|---|---|---|---|")
    med = {}
    for k, (est, lens, timer, _) in live.items():
        w, c, m = timer.us()
        med[k] = (w, c)
        print(f"| {names[k]} | {np.mean(lens):.2f} | {rmse(est, theta):.3f} | {w:.1f} | "
              f"{c:.1f} | {m:.1f} |")
    for k in live:
        if k != "proficio":
            print(f"{k} / Proficio: {med[k][0] / med['proficio'][0]:.1f}x (wall), "
                  f"{med[k][1] / med['proficio'][1]:.1f}x (CPU)")

    n_prof = int(res.n_items.sum())
    m_len = np.array([r.n_items_administered for r in mres])
    m_est = np.array([r.theta for r in mres])
    print(f"\nBatch simulation of all {n} simulees, {args.reps} alternating runs "
          f"(µs per administered item, all-in; best / median)\n")
    print("| engine | mean length | θ RMSE | best wall | median wall | best CPU |")
    print("|---|---|---|---|---|---|")
    for k, lens, est, items in (("proficio", res.n_items[:, 0], res.theta_hat[:, 0], n_prof),
                                ("mirt", m_len, m_est, int(m_len.sum()))):
        wall = np.array([t[0] for t in times[k]]) / items * 1e6
        cpu = np.array([t[1] for t in times[k]]) / items * 1e6
        label = ("Proficio engine.simulation.simulate" if k == "proficio"
                 else "mirt Rust batch (draws its own responses)")
        print(f"| {label} | {np.mean(lens):.2f} | {rmse(est, theta):.3f} | {wall.min():.1f} | "
              f"{np.median(wall):.1f} | {cpu.min():.1f} |")
    print(f"Proficio batch identical to the live engine (items and θ̂ of every simulee): {same}")

    big = make_bank(5000, 7)
    n_big = min(n, 200)
    ans_big = irt.simulate_responses(theta[:n_big], big, g).astype(np.int8)
    big_live = run_live(big, theta[:n_big], ans_big, peers=False)["proficio"]
    w, c, m = big_live[2].us()
    print(f"\n5,000-item bank, {n_big} simulees: live step median {w:.1f} µs wall, {c:.1f} µs "
          f"CPU (mean wall {m:.1f}); mean length {np.mean(big_live[1]):.2f}")

    n_forms = 3 if args.quick else 10
    curve = fixed_form_curve(bank, theta, answers, [20, 30, 40, 45, 50, 55, 60, 70, 80],
                             n_forms)
    cat_rmse = rmse(live["proficio"][0], theta)
    cat_len = float(np.mean(live["proficio"][1]))
    L_eq = equal_rmse_length(curve, cat_rmse)
    print(f"\nrandom fixed forms (mean RMSE over {n_forms} forms): "
          + ", ".join(f"{L}: {v:.3f}" for L, v in curve.items()))
    print(f"fixed form of equal RMSE ({cat_rmse:.3f}): {L_eq:.1f} items; CAT/fixed length ratio "
          f"{cat_len / L_eq:.3f}")

    base = summarize(res)
    print(f"\nexposure: no control: max {base.max_exposure:.3f}, length "
          f"{base.mean_length:.2f}, RMSE {base.skills[0].rmse:.3f}")
    s5 = summarize(run_exposure(bank, theta, answers, engine.Randomesque(k=5)))
    print(f"randomesque k=5: max exposure {s5.max_exposure:.3f}, length {s5.mean_length:.2f} "
          f"(+{100 * (s5.mean_length / base.mean_length - 1):.1f} %), RMSE "
          f"{s5.skills[0].rmse:.3f}, overlap {s5.overlap_rate:.3f}")
    eng = engine.CatEngine(bank, engine.Blueprint(se_target=SE_TARGET, max_items=MAX_ITEMS))
    t0 = time.perf_counter()
    tuning = tune_sympson_hetter(eng, lambda gg: gg.normal(size=2000), 0.25, rng=9)
    t_tune = time.perf_counter() - t0
    ssh = summarize(run_exposure(bank, theta, answers, tuning.control))
    check = summarize(simulate(engine.CatEngine(bank, engine.Blueprint(
        se_target=SE_TARGET, max_items=MAX_ITEMS, exposure=tuning.control)),
        np.random.default_rng(11).normal(size=20000), rng=12))
    print(f"Sympson-Hetter r_max=0.25 (tuned in {t_tune:.0f} s, converged {tuning.converged}): "
          f"max exposure {ssh.max_exposure:.3f} on these {n} simulees, "
          f"{check.max_exposure:.3f} on 20,000 fresh simulees; length {ssh.mean_length:.2f} "
          f"(+{100 * (ssh.mean_length / base.mean_length - 1):.1f} %), RMSE "
          f"{ssh.skills[0].rmse:.3f}, overlap {ssh.overlap_rate:.3f}")
    capped = summarize(simulate(engine.CatEngine(bank, engine.Blueprint(
        se_target=SE_TARGET, max_items=MAX_ITEMS, exposure=engine.ExposureCap(0.25))),
        theta, answers=answers, update_rates_every=50))
    print(f"exposure cap 0.25 (running rates, updated every 50 simulees): max exposure "
          f"{capped.max_exposure:.3f}, length {capped.mean_length:.2f} "
          f"(+{100 * (capped.mean_length / base.mean_length - 1):.1f} %), RMSE "
          f"{capped.skills[0].rmse:.3f}")


if __name__ == "__main__":
    main()
