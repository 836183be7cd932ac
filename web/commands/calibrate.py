"""``proficio calibrate``: fit item parameters from a long-format response log (MML-EM, or
conditional ML for the Rasch family with ``--method cml``).

    proficio calibrate RESPONSES.csv --model 2pl --out ITEMS.csv [--items SPEC.csv]
        [--anchors ITEMS.csv] [--prior-a SD] [--scores SCORES.csv] [--common-a A]
        [--nodes Q] [--theta-range H] [--positive-slopes] [--recode] [--se-method M]
    proficio calibrate RESPONSES.csv --method cml --model pcm --out ITEMS.csv [--scores …]

Models: 1pl, 2pl, 3pl, 4pl, grm, gpcm, and the Rasch family (rasch, pcm, rsm: every slope fixed
at --common-a, default 1, with the latent SD estimated).

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
from typing import TYPE_CHECKING

import numpy as np

from calibration import EMProgress, ItemSpec, MMLCalibrator, Priors
from calibration.results import CML_MODELS
from calibration.spec import read_item_specs
from irt import DICHOTOMOUS_MODELS, MODELS, RASCH_MODELS
from irt.io import read_items_csv, read_responses_csv, write_items_csv

if TYPE_CHECKING:  # imported when a bar is shown (--quiet runs skip it)
    from tqdm import tqdm


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="fit item parameters from responses (MML-EM)",
                       description="Marginal maximum likelihood calibration (Bock-Aitkin EM) "
                                   "of every model in a long-format response file.")
    p.add_argument("responses", metavar="RESPONSES.csv",
                   help="person_id,item_id,response (one row per answer)")
    p.add_argument("--model", default="2pl",
                   choices=(*MODELS, *(m for m in CML_MODELS if m not in MODELS)),
                   help="model for items not listed in --items (default 2pl)")
    p.add_argument("--method", default="mml", choices=("mml", "cml"),
                   help="mml: marginal ML (default); cml: conditional ML, sample-free item "
                        "estimates for --model rasch|pcm|rsm, persons by WLE")
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
    p.add_argument("--common-a", type=float, metavar="A",
                   help="the common slope: fixes the 1pl slope; the slope of rasch/pcm/rsm "
                        "items (default 1, latent SD estimated); refused with free-slope models")
    p.add_argument("--positive-slopes", action="store_true",
                   help="keep every slope >= 0.02 (default: a slope may turn negative, which "
                        "flags a reverse-keyed or miskeyed item)")
    p.add_argument("--recode", action="store_true",
                   help="responses coded from 1 (or any code above 0): shift them to start at 0")
    p.add_argument("--nodes", type=int, default=41, help="quadrature nodes (default 41)")
    p.add_argument("--theta-range", type=float, default=6.0, metavar="H",
                   help="quadrature grid on -H..H latent SDs (default 6; mirt uses 6, its "
                        "reference fits 8); steep items (a > 3) want more --nodes")
    p.add_argument("--max-iter", type=int, default=500, help="EM cycles at most")
    p.add_argument("--tol", type=float, default=1e-4, help="convergence tolerance")
    p.add_argument("--no-se", action="store_true", help="skip standard errors")
    p.add_argument("--se-method", default="auto", choices=("auto", "oakes", "xpd"),
                   help="MML standard errors: Oakes' observed information, the cross-product "
                        "(XPD), or auto (default: Oakes up to 1,000 persons, XPD beyond)")
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
            from tqdm import tqdm

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
    if args.method == "cml":
        return _run_cml(args, started)
    if args.model not in MODELS:
        raise ValueError(f"--model {args.model} is fitted by conditional ML: add --method cml")
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
    cal = MMLCalibrator(args.model, priors=priors, n_nodes=args.nodes,
                        half_width=args.theta_range, max_iter=args.max_iter, tol=args.tol,
                        common_a=args.common_a, slopes="positive" if args.positive_slopes
                        else "free", recode=args.recode, standard_errors=not args.no_se,
                        se_method=args.se_method, callback=bars)
    try:
        cal.fit(log, items=specs, anchors=anchors)
    finally:
        bars.close()
    write_items_csv(args.out, cal.items_, _extra_columns(cal))
    if args.scores:
        _write_scores(args.scores, cal)
    _summary(cal, args, time.perf_counter() - started)
    return 0


def _run_cml(args: argparse.Namespace, started: float) -> int:
    if args.model not in CML_MODELS:
        raise ValueError(f"--method cml fits the Rasch family: --model must be one of "
                         f"{', '.join(CML_MODELS)}, got {args.model}")
    if args.items or args.anchors:
        raise ValueError("--method cml takes no --items or --anchors (CML fits one scale; "
                         "link to a bank afterwards with `proficio link`)")
    from calibration.cml import CMLCalibrator  # imported here: MML runs do without it

    log = read_responses_csv(args.responses)
    if log.data.n_responses == 0:
        raise ValueError(f"{args.responses}: no responses")
    cal = CMLCalibrator(args.model, max_iter=args.max_iter,
                        standard_errors=not args.no_se).fit(log)
    n = np.bincount(log.data.item, minlength=len(log.item_ids))
    se = cal.se_
    extra: dict[str, list] = {}
    if args.model == "rasch":
        extra["se_b"] = list(se.b)
    else:
        for k in range(se.thresholds.shape[1]):
            extra[f"se_b{k + 1}"] = list(se.thresholds[:, k])
    extra["n_responses"] = [int(v) for v in n]
    write_items_csv(args.out, cal.items_, extra)
    if args.scores:
        est = cal.scores_
        with open(args.scores, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["person_id", "skill", "theta", "se", "n_responses"])
            for p, pid in enumerate(cal.person_ids_):
                if est.n_responses[p]:
                    w.writerow([pid, "default", f"{est.theta[p]:.6g}", f"{est.se[p]:.6g}",
                                int(est.n_responses[p])])
    print(f"CML {args.model}: {len(cal.items_)} items, {cal.n_persons_used_} persons with a "
          f"non-extreme score in {cal.n_groups_} response pattern(s); conditional loglik "
          f"{cal.loglik_:.4f}, {cal.n_parameters_} parameters, {cal.n_iter_} Newton iterations"
          f"{'' if cal.converged_ else ' (NOT converged)'}")
    print(f"thresholds centred (all steps sum to 0); persons by {cal.person_method.upper()}; "
          f"standard errors: {se.method}")
    print(f"wrote {args.out} in {time.perf_counter() - started:.2f} s")
    return 0


def _extra_columns(cal: MMLCalibrator) -> dict[str, list]:
    bank, se = cal.items_, cal.se_
    extra: dict[str, list] = {"se_a": list(se.a)}
    dich = [m in DICHOTOMOUS_MODELS for m in bank.models]
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
            "latent SD", "cycles", "converged")
    rows = [(s.skill, s.n_items, s.n_persons, s.n_responses, s.n_parameters, f"{s.loglik:.3f}",
             f"{s.aic:.1f}", f"{s.bic:.1f}", f"{s.latent_sd:.4g}", s.n_iter,
             "yes" if s.converged else "NO")
            for s in cal.skills_]
    widths = [max(len(str(h)), *(len(str(r[k])) for r in rows)) for k, h in enumerate(head)]
    print("  ".join(str(h).rjust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)))
    if cal.recode_shift_:
        print(f"responses recoded: every code minus {cal.recode_shift_} (codes "
              f"{cal.recode_shift_}.. read as categories 0..)")
    a = cal.items_.a
    print(f"{len(cal.items_)} items calibrated ({', '.join(sorted(set(cal.items_.models)))}); "
          f"a from {np.min(a):.3g} to {np.max(a):.3g}; standard errors: {cal.se_.method}")
    if any(m in RASCH_MODELS for m in cal.items_.models):
        print("Rasch family: slopes fixed at the common a, latent SD estimated (column "
              "'latent SD')")
    negative = [cal.items_.item_ids[k] for k in np.flatnonzero(a < 0)]
    if negative:
        more = " …" if len(negative) > 10 else ""
        print(f"{len(negative)} items with a NEGATIVE slope (run against the scale: reverse-"
              f"worded or miskeyed?): {', '.join(negative[:10])}{more}")
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
