"""``proficio simulate``: a CAT simulation study from an item parameters file and true θs.

THETAS.csv has ``person_id`` and either ``theta`` (used for every skill) or one column per skill.
RESULTS.csv gets one row per simulee and skill:
``person_id,skill,theta_true,theta_hat,se,n_items,stop_reason`` (plus ``decision`` and
``decided`` with ``--cut``). A summary goes to stdout. ``--fixed-length N`` runs the random
fixed-form comparison instead of the CAT. An items file with a ``status`` column
(operational/pretest/retired) is honoured. Every blueprint (per-skill EAP, correlated skills,
shadow tests, the composite stopping rule) runs through the same vectorized engine step as live
sessions.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

import engine
from engine.simulation import (
    SimulationResult,
    SimulationSummary,
    concat_results,
    draw_answers,
    simulate,
    simulate_fixed_form,
    summarize,
    tune_sympson_hetter,
)
from irt.io import FormatError, read_items_csv
from web.cli import CommandError

SELECTORS = {"mfi": engine.MaxInfo, "kl": engine.KLInfo, "mpwi": engine.PosteriorWeightedInfo,
             "bmatch": engine.BMatching, "astrat": engine.AStratified,
             "d_optimal": engine.DOptimal, "c_optimal": engine.COptimal,
             "shadow": engine.ShadowTest}
EXPOSURES = ("none", "randomesque", "sympson-hetter", "cap")
#: Below this many simulees one process is faster than starting workers.
PARALLEL_MIN = 4000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="CAT simulation study (accuracy, length, exposure)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", required=True, type=Path, help="item parameters CSV")
    p.add_argument("--thetas", required=True, type=Path, help="person_id + theta (or per skill)")
    p.add_argument("--out", required=True, type=Path, help="results CSV to write")
    p.add_argument("--blueprint", type=Path,
                   help="blueprint JSON (its settings replace the options below)")
    p.add_argument("--save-blueprint", type=Path, help="write the blueprint used (JSON)")
    g = p.add_argument_group("selection")
    g.add_argument("--selector", choices=sorted(SELECTORS), default="mfi",
                   help="c_optimal: the item that most reduces the overall (composite) score's "
                        "variance, skills competing once each has its minimum")
    g.add_argument("--kl-switch", type=int, default=5, help="kl: items before switching to mfi")
    g.add_argument("--strata", type=int, default=4, help="astrat: number of a-strata")
    g.add_argument("--start-theta", type=float, default=0.0)
    g.add_argument("--prior-mean", type=float, default=0.0)
    g.add_argument("--prior-sd", type=float, default=1.0)
    g.add_argument("--correlations", type=Path, metavar="CORR.csv",
                   help="latent correlations between skills (calibration.correlation CSV): "
                        "multidimensional CAT, D-optimal selection, MAP under the correlated "
                        "prior")
    g.add_argument("--tag-count", action="append", default=[], metavar="TAG:MIN[:MAX]",
                   help="shadow: scored items carrying TAG (bank CSV column 'tags', "
                        "';'-separated)")
    g.add_argument("--max-exposure", type=float,
                   help="shadow: leave out items whose --exposure-rates rate is at least this")
    g = p.add_argument_group("exposure control")
    g.add_argument("--exposure", choices=EXPOSURES, default="none")
    g.add_argument("--randomesque-k", type=int, default=5)
    g.add_argument("--sh-target", type=float, default=0.25,
                   help="sympson-hetter: target maximum exposure r_max (tuned by simulation)")
    g.add_argument("--sh-progressive", type=int, default=0, metavar="N",
                   help="sympson-hetter: progressive start over the first N items (the first "
                        "drawn at random from the bank; Revuelta & Ponsoda 1998)")
    g.add_argument("--cap", type=float, default=0.25, help="cap: maximum observed rate")
    g.add_argument("--exposure-rates", type=Path,
                   help="cap: CSV item_id,rate of observed exposure rates (default: the rates "
                        "observed in this study so far, updated every --rates-every simulees)")
    g.add_argument("--rates-every", type=int, default=100,
                   help="cap without --exposure-rates: simulees between rate updates")
    g = p.add_argument_group("content and stopping")
    g.add_argument("--stop-se", type=float, default=0.3, help="SE target per skill (0: none)")
    g.add_argument("--max-items", type=int, default=40)
    g.add_argument("--min-items", type=int, default=1)
    g.add_argument("--skill", action="append", default=[], metavar="NAME[:MIN[:MAX[:WEIGHT]]]",
                   help="a skill of the blueprint (repeat; default: every skill of the bank)")
    g.add_argument("--cut", type=float, help="classify pass/fail against this cut score")
    g.add_argument("--classify", choices=("sprt", "ci"), default="sprt")
    g.add_argument("--alpha", type=float, default=0.05)
    g.add_argument("--beta", type=float, default=0.05)
    g.add_argument("--delta", type=float, default=0.3, help="SPRT indifference half-width")
    g.add_argument("--ci-level", type=float, default=0.95)
    g.add_argument("--composite-se", type=float, metavar="TARGET",
                   help="stop once the SE of the weighted sum of the skills' θ (posterior "
                        "covariance) is at most TARGET")
    g.add_argument("--composite-weight", action="append", default=[], metavar="SKILL:W",
                   help="composite: weight of a skill (repeat; default equal weights)")
    g.add_argument("--composite-min", action="append", default=[], metavar="SKILL:N",
                   help="composite: minimum scored items of a skill before it may stop")
    g = p.add_argument_group("run")
    g.add_argument("--fixed-length", type=int, help="random fixed form of N items instead")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--jobs", type=int, default=0,
                   help="worker processes (0: both cores for large studies)")
    g.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=run)


def _skill_spec(text: str) -> engine.SkillSpec:
    parts = text.split(":")
    if not parts[0] or len(parts) > 4:
        raise CommandError(f"--skill {text!r}: expected NAME[:MIN[:MAX[:WEIGHT]]]")
    try:
        lo = int(parts[1]) if len(parts) > 1 and parts[1] else 0
        hi = int(parts[2]) if len(parts) > 2 and parts[2] else None
        w = float(parts[3]) if len(parts) > 3 and parts[3] else 1.0
    except ValueError:
        raise CommandError(f"--skill {text!r}: MIN/MAX must be integers, WEIGHT a number"
                           ) from None
    return engine.SkillSpec(parts[0], lo, hi, w)


def build_blueprint(args: argparse.Namespace) -> engine.Blueprint:
    if args.blueprint is not None:
        return engine.Blueprint.from_json(args.blueprint.read_text(encoding="utf-8"))
    sel_cls = SELECTORS[args.selector]
    selector = (sel_cls(switch_after=args.kl_switch) if args.selector == "kl"
                else sel_cls(n_strata=args.strata) if args.selector == "astrat"
                else _shadow(args) if args.selector == "shadow" else sel_cls())
    skills = tuple(_skill_spec(s) for s in args.skill)
    correlations = None
    if args.correlations is not None:
        from calibration.correlation import read_correlation_csv

        if not args.correlations.is_file():
            raise FileNotFoundError(f"no such file: {args.correlations}")
        corr = read_correlation_csv(args.correlations)
        skills = skills or tuple(engine.SkillSpec(s) for s in corr.skills)
        try:
            correlations = corr.for_skills([s.skill for s in skills])
        except KeyError as exc:
            raise CommandError(f"--correlations: {exc.args[0]}") from None
    exposure = {"none": engine.NoExposureControl(),
                "randomesque": engine.Randomesque(k=args.randomesque_k),
                "sympson-hetter": engine.SympsonHetter(progressive=args.sh_progressive),
                "cap": engine.ExposureCap(max_rate=args.cap)}[args.exposure]
    classification = None
    if args.cut is not None:
        classification = engine.Classification(cut=args.cut, method=args.classify,
                                               alpha=args.alpha, beta=args.beta,
                                               delta=args.delta, level=args.ci_level)
    stopping = () if args.composite_se is None else (engine.CompositeSE(
        args.composite_se, weights=_pairs(args.composite_weight, "--composite-weight", float),
        min_items=_pairs(args.composite_min, "--composite-min", int)),)
    balancer = engine.MinimumsFirst() if args.selector == "c_optimal" else None
    return engine.Blueprint(
        skills=skills, correlations=correlations, min_items=args.min_items, balancer=balancer,
        max_items=args.max_items, se_target=args.stop_se if args.stop_se > 0 else None,
        selector=selector, exposure=exposure,
        start=engine.FixedStart(args.start_theta, args.prior_mean, args.prior_sd),
        classification=classification, stopping=stopping, seed=args.seed)


def _pairs(texts: list[str], option: str, kind: type) -> dict:
    out = {}
    for text in texts:
        name, sep, value = text.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = kind(value)
        except ValueError:
            raise CommandError(f"{option} {text!r}: expected SKILL:{kind.__name__.upper()}"
                               ) from None
    return out


def _shadow(args: argparse.Namespace) -> engine.ShadowTest:
    counts = {}
    for text in args.tag_count:
        parts = text.split(":")
        try:
            if not parts[0] or len(parts) not in (2, 3):
                raise ValueError
            counts[parts[0]] = [int(parts[1]),
                                int(parts[2]) if len(parts) == 3 and parts[2] else None]
        except ValueError:
            raise CommandError(f"--tag-count {text!r}: expected TAG:MIN[:MAX] with integers"
                               ) from None
    return engine.ShadowTest(tag_counts=counts, max_exposure=args.max_exposure)


def read_thetas(path: Path, skills: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """``person_id`` plus ``theta`` or one column per skill; errors name the line and field."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if "person_id" not in header:
            raise FormatError(f"{path} line 1: missing column 'person_id' in header {header}")
        if "theta" in header:
            cols = [header.index("theta")] * len(skills)
        else:
            missing = [s for s in skills if s not in header]
            if missing:
                raise FormatError(f"{path} line 1: no column 'theta' and no column for skill(s) "
                                  f"{missing}")
            cols = [header.index(s) for s in skills]
        names = [header[c] for c in cols]
        pid = header.index("person_id")
        ids: list[str] = []
        rows: list[list[float]] = []
        seen: dict[str, int] = {}
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise FormatError(f"{path} line {lineno}: {len(row)} fields, header has "
                                  f"{len(header)}")
            person = row[pid].strip()
            if not person:
                raise FormatError(f"{path} line {lineno}: field 'person_id' is empty")
            if person in seen:
                raise FormatError(f"{path} line {lineno}: duplicate person_id {person!r} "
                                  f"(first on line {seen[person]})")
            seen[person] = lineno
            values = []
            for c, name in zip(cols, names, strict=True):
                try:
                    v = float(row[c])
                except ValueError:
                    raise FormatError(f"{path} line {lineno}: field {name!r} is not a number: "
                                      f"{row[c]!r}") from None
                if not math.isfinite(v):
                    raise FormatError(f"{path} line {lineno}: field {name!r} must be finite")
                values.append(v)
            ids.append(person)
            rows.append(values)
    if not ids:
        raise FormatError(f"{path}: no simulees")
    return ids, np.array(rows, dtype=float)


def _read_rates(path: Path) -> dict[str, float]:
    rates = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"item_id", "rate"} <= set(reader.fieldnames):
            raise FormatError(f"{path} line 1: expected columns item_id,rate")
        for lineno, rec in enumerate(reader, start=2):
            try:
                rates[rec["item_id"].strip()] = float(rec["rate"])
            except ValueError:
                raise FormatError(f"{path} line {lineno}: field 'rate' is not a number: "
                                  f"{rec['rate']!r}") from None
    return rates


def _chunk(pool, blueprint, theta, answers, seeds, ids):
    eng = engine.make_engine(pool, blueprint)
    return simulate(eng, theta, answers=answers, seeds=seeds, person_ids=ids)


def _run_cat(eng: engine.CatEngine, ids: list[str], theta: np.ndarray, answers: np.ndarray,
             jobs: int, progress: bool, rates_every: int | None) -> SimulationResult:
    from tqdm import tqdm

    n = len(ids)
    seeds = [engine.derive_seed(eng.blueprint.seed, p) for p in range(n)]
    with tqdm(total=n, unit="simulee", disable=not progress, file=sys.stderr) as bar:
        if jobs <= 1 or rates_every is not None:  # running rates make the groups sequential
            return simulate(eng, theta, answers=answers, seeds=seeds, person_ids=ids,
                            chunk_size=500, progress=bar.update,
                            update_rates_every=rates_every)
        bounds = np.linspace(0, n, 4 * jobs + 1).astype(int)
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futures = [ex.submit(_chunk, eng.pool, eng.blueprint, theta[a:b], answers[a:b],
                                 seeds[a:b], ids[a:b])
                       for a, b in itertools.pairwise(bounds.tolist()) if b > a]
            parts = []
            for fut in futures:
                parts.append(fut.result())
                bar.update(len(parts[-1].person_ids))
        return concat_results(parts)


def write_results(path: Path, result: SimulationResult) -> None:
    decision, decided = result.decision, result.decided
    classified = decision is not None and bool(np.any(decision != ""))
    if classified and decided is None:
        raise ValueError("the simulation result has decisions but no 'decided' flags")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["person_id", "skill", "theta_true", "theta_hat", "se", "n_items",
                    "stop_reason"] + (["decision", "decided"] if classified else []))
        for p, pid in enumerate(result.person_ids):
            for k, s in enumerate(result.skills):
                row = [pid, s, f"{result.theta_true[p, k]:.6g}", f"{result.theta_hat[p, k]:.6g}",
                       f"{result.se[p, k]:.6g}", int(result.n_items[p, k]),
                       result.stop_reason[p]]
                if classified and decision is not None and decided is not None:
                    row += [decision[p, k], int(decided[p, k])]
                w.writerow(row)


def print_summary(title: str, s: SimulationSummary) -> None:
    print(title)
    print(f"  simulees: {s.n_simulees}")
    print(f"  test length: mean {s.mean_length:.2f}, min {s.min_length}, max {s.max_length}")
    for k in s.skills:
        print(f"  skill {k.skill}: bias {k.bias:+.4f}  RMSE {k.rmse:.4f}  r {k.correlation:.3f}"
              f"  mean items {k.mean_items:.2f}")
    print("  conditional on true θ (deciles):")
    print(f"    {'skill':<12} {'decile':>6} {'θ range':>17} {'n':>6} {'bias':>8} {'RMSE':>7}")
    for d in s.deciles:
        print(f"    {d.skill:<12} {d.decile:>6} {d.theta_low:>+8.2f}..{d.theta_high:<+7.2f} "
              f"{d.n:>6} {d.bias:>+8.3f} {d.rmse:>7.3f}")
    print(f"  item exposure: max {s.max_exposure:.3f}, mean {s.mean_exposure:.3f}")
    print(f"  test overlap rate: {s.overlap_rate:.3f}")
    print(f"  share of the bank never used: {s.unused_share:.3f}")
    print("  stop reasons: " + ", ".join(f"{r} {n}" for r, n in s.stop_reasons))


def run(args: argparse.Namespace) -> int:
    for path in (args.bank, args.thetas):
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    table = read_items_csv(args.bank)
    status = table.extra.get("status")
    rates = _read_rates(args.exposure_rates) if args.exposure_rates else None
    tag_col = table.extra.get("tags")
    tags = ({iid: [t.strip() for t in text.split(";") if t.strip()]
             for iid, text in zip(table.bank.item_ids, tag_col, strict=True)}
            if tag_col else None)
    # () and {} are what ItemPool turns None into: all operational, no rates, no tags
    pool = engine.ItemPool(table.bank, status=[s or "operational" for s in status]
                           if status else (), exposure_rates=rates or {}, tags=tags or {})
    blueprint = build_blueprint(args)
    eng = engine.make_engine(pool, blueprint)
    ids, theta = read_thetas(args.thetas, eng.skill_names)
    n = len(ids)
    rng = np.random.default_rng(blueprint.seed)
    answers = draw_answers(eng, theta, rng)
    progress = not args.no_progress and sys.stderr.isatty()
    if args.fixed_length is not None:
        if not eng.scorer.grid:
            raise CommandError("--fixed-length scores by EAP on the grid; it is not available "
                               "with the MAP scorer (--correlations)")
        result = simulate_fixed_form(eng, theta, args.fixed_length, answers=answers, rng=rng,
                                     person_ids=ids)
        title = f"Fixed form: {args.fixed_length} random items"
    else:
        if isinstance(blueprint.exposure, engine.SympsonHetter) and \
                not blueprint.exposure.parameters:
            print(f"Tuning Sympson-Hetter parameters for r_max = {args.sh_target} ...",
                  file=sys.stderr)
            tuning = tune_sympson_hetter(
                eng, lambda g: theta[g.integers(0, n, size=max(n, 1000))], args.sh_target,
                rng=rng)
            if not tuning.converged:
                print("warning: Sympson-Hetter tuning did not reach the target; rates in the "
                      "last rounds: " + ", ".join(f"{h:.3f}" for h in tuning.max_exposure[-3:]),
                      file=sys.stderr)
            blueprint = replace(blueprint, exposure=tuning.control)
            eng = engine.make_engine(pool, blueprint)
        jobs = args.jobs if args.jobs > 0 else (min(2, os.cpu_count() or 1)
                                                if n >= PARALLEL_MIN else 1)
        running = (isinstance(blueprint.exposure, engine.ExposureCap)
                   and args.exposure_rates is None)
        result = _run_cat(eng, ids, theta, answers, jobs, progress,
                          args.rates_every if running else None)
        stops = ", ".join(f"{r.name}" for r in eng.stoppers) or "lengths only"
        title = (f"CAT: scorer {eng.scorer.name}, selector {eng.selector.name}, balancer "
                 f"{eng.balancer.name}, exposure {blueprint.exposure.name}, stopping: {stops}, "
                 f"{blueprint.min_items}-{blueprint.max_items} items")
    if args.save_blueprint is not None:
        args.save_blueprint.write_text(json.dumps(blueprint.to_dict(), indent=2),
                                       encoding="utf-8")
    write_results(args.out, result)
    print_summary(title, summarize(result))
    print(f"  results: {args.out}")
    return 0
