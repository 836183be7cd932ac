"""``proficio calibrate``: fit item parameters from a long-format response log (MML-EM).

    proficio calibrate RESPONSES.csv --model 2pl --out ITEMS.csv [--items SPEC.csv]
        [--anchors ITEMS.csv] [--prior-a SD] [--scores SCORES.csv]

Shows a progress bar per skill (EM cycle and log-likelihood) and ends with a summary table.

Defaults: plain marginal ML for the slopes (DESIGN.md; the estimator checked against R's mirt).
``proficio recalibrate`` and the web's calibration jobs share another set of defaults
(`calibration.recalibrate.RecalibrationSettings`: lognormal(0, 0.5) slope prior, anchored mode,
publishing rules); ``--prior-a 0.5`` gives this command the same prior.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time

import numpy as np
from tqdm import tqdm

from calibration import EMProgress, ItemSpec, MMLCalibrator, Priors
from calibration.spec import read_item_specs
from irt import MODELS
from irt.io import read_items_csv, read_responses_csv, write_items_csv


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit item parameters from responses (MML-EM)",
                       description="Marginal maximum likelihood calibration (Bock-Aitkin EM) "
                                   "of every model in a long-format response file.")
    p.add_argument("responses", metavar="RESPONSES.csv",
                   help="person_id,item_id,response (one row per answer)")
    p.add_argument("--model", default="2pl", choices=MODELS,
                   help="model for items not listed in --items (default 2pl)")
    p.add_argument("--out", required=True, metavar="ITEMS.csv",
                   help="calibrated item parameters with se_* and n_responses")
    p.add_argument("--items", metavar="SPEC.csv",
                   help="item_id[,model][,skill][,n_categories] per item (an items file works)")
    p.add_argument("--anchors", metavar="ITEMS.csv",
                   help="item parameters to hold fixed (the scale of their skill)")
    p.add_argument("--prior-a", type=float, metavar="SD",
                   help="lognormal(0, SD) prior on every discrimination (BILOG: 0.5)")
    p.add_argument("--prior-b", type=float, nargs=2, metavar=("MEAN", "SD"),
                   help="normal prior on dichotomous difficulties")
    p.add_argument("--prior-c", type=float, nargs=2, metavar=("ALPHA", "BETA"),
                   default=(6.0, 16.0), help="beta prior on the 3PL/4PL c (default 6 16)")
    p.add_argument("--no-prior-c", action="store_true", help="plain ML for c (unstable)")
    p.add_argument("--nodes", type=int, default=41, help="quadrature nodes (default 41)")
    p.add_argument("--max-iter", type=int, default=500, help="EM cycles at most")
    p.add_argument("--tol", type=float, default=1e-4, help="convergence tolerance")
    p.add_argument("--no-se", action="store_true", help="skip standard errors")
    p.add_argument("--scores", metavar="SCORES.csv",
                   help="also write person_id,skill,theta,se,n_responses (EAP)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _priors(args: argparse.Namespace) -> Priors:
    if args.prior_a is not None and not args.prior_a > 0:
        raise ValueError(f"--prior-a must be > 0, got {args.prior_a}")
    return Priors(a=None if args.prior_a is None else (0.0, args.prior_a),
                  b=None if args.prior_b is None else tuple(args.prior_b),
                  c=None if args.no_prior_c else tuple(args.prior_c))


class _Bars:
    """One tqdm bar per skill, advanced by the calibrator's progress callback."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None
        self.skill: str | None = None

    def __call__(self, p: EMProgress) -> None:
        if self.quiet:
            return
        if p.skill != self.skill:
            self.close()
            self.skill = p.skill
            self.bar = tqdm(total=p.max_iter, desc=f"EM {p.skill}", unit="cycle",
                            file=sys.stderr, leave=True, dynamic_ncols=True)
        if self.bar is None:
            return
        self.bar.update(p.cycle - self.bar.n)
        self.bar.set_postfix(loglik=f"{p.loglik:.3f}", change=f"{p.max_change:.1e}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.total = self.bar.n  # stopped early: converged
            self.bar.refresh()
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    priors = _priors(args)
    log = read_responses_csv(args.responses)
    if log.data.n_responses == 0:
        raise ValueError(f"{args.responses}: no responses")
    specs = read_item_specs(args.items, default_model=args.model) if args.items else None
    if specs is not None:
        listed = {s.item_id for s in specs}
        specs = specs + [ItemSpec(i, args.model) for i in log.item_ids if i not in listed]
    anchors = read_items_csv(args.anchors).bank if args.anchors else None
    bars = _Bars(args.quiet)
    cal = MMLCalibrator(args.model, priors=priors, n_nodes=args.nodes, max_iter=args.max_iter,
                        tol=args.tol, standard_errors=not args.no_se, callback=bars)
    try:
        cal.fit(log, items=specs, anchors=anchors)
    finally:
        bars.close()
    write_items_csv(args.out, cal.items_, _extra_columns(cal))
    if args.scores:
        _write_scores(args.scores, cal)
    _summary(cal, args, time.perf_counter() - started)
    return 0


def _extra_columns(cal: MMLCalibrator) -> dict[str, list]:
    bank, se = cal.items_, cal.se_
    extra: dict[str, list] = {"se_a": list(se.a)}
    dich = [m in ("1pl", "2pl", "3pl", "4pl") for m in bank.models]
    if any(dich):
        extra["se_b"] = list(se.b)
    if any(m in ("3pl", "4pl") for m in bank.models):
        extra["se_c"] = list(se.c)
    if "4pl" in bank.models:
        extra["se_d"] = list(se.d)
    if not all(dich):
        for k in range(se.thresholds.shape[1]):
            extra[f"se_b{k + 1}"] = list(se.thresholds[:, k])
    extra["n_responses"] = [int(n) for n in cal.n_responses_]
    return extra


def _write_scores(path: str, cal: MMLCalibrator) -> None:
    sc = cal.scores_
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["person_id", "skill", "theta", "se", "n_responses"])
        for p, pid in enumerate(sc.person_ids):
            for s, skill in enumerate(sc.skills):
                if sc.n_responses[p, s]:
                    w.writerow([pid, skill, f"{sc.theta[p, s]:.6g}", f"{sc.se[p, s]:.6g}",
                                int(sc.n_responses[p, s])])


def _summary(cal: MMLCalibrator, args: argparse.Namespace, seconds: float) -> None:
    head = ("skill", "items", "persons", "responses", "params", "loglik", "AIC", "BIC",
            "cycles", "converged")
    rows = [(s.skill, s.n_items, s.n_persons, s.n_responses, s.n_parameters, f"{s.loglik:.3f}",
             f"{s.aic:.1f}", f"{s.bic:.1f}", s.n_iter, "yes" if s.converged else "NO")
            for s in cal.skills_]
    widths = [max(len(str(h)), *(len(str(r[k])) for r in rows)) for k, h in enumerate(head)]
    print("  ".join(str(h).rjust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)))
    a = cal.items_.a
    print(f"{len(cal.items_)} items calibrated ({', '.join(sorted(set(cal.items_.models)))}); "
          f"a from {np.min(a):.3g} to {np.max(a):.3g}; standard errors: {cal.se_.method}")
    if cal.excluded_:
        print(f"{len(cal.excluded_)} items not calibrated: {', '.join(cal.excluded_[:10])}"
              f"{' …' if len(cal.excluded_) > 10 else ''}")
    bound = [i for i in cal.issues_ if i.kind == "bound"]
    print("prior on a: " + ("none (plain marginal ML, this command's default)"
                            if args.prior_a is None else f"lognormal(0, {args.prior_a})"))
    if bound and args.prior_a is None:
        print(f"{len(bound)} parameter(s) at a bound: with few responses per item use "
              f"--prior-a 0.5 (the default of `proficio recalibrate` and of the web's "
              f"calibration jobs)")
    others = [i for i in cal.issues_ if i.kind != "excluded"]
    if others:
        print(f"{len(others)} warnings (see the log above), e.g.: {others[0].message}")
    print(f"wrote {args.out} in {seconds:.2f} s"
          + ("" if math.isfinite(cal.loglik_) else " (log-likelihood not finite)"))
