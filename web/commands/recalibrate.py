"""``proficio recalibrate``: the web's calibration job on files — estimate, set the scale, test
fit and drift, analyse the items and recommend per item (publish / hold / review).

    proficio recalibrate RESPONSES.csv --current ITEMS.csv [--content BANK.json|.csv]
        [--items SPEC.csv] [--model 2pl] [--mode anchored|free] [--prior-a 0.5 | --no-prior-a]
        [--alpha 0.01] [--min-responses 200] [--max-se-b 0.3] [--allow-less-precise]
        [--allow-misfit] [--allow-drift] [--allow-miskeyed]
        [--out NEW_ITEMS.csv] [--table TABLE.csv] [--report REPORT.json] [--quiet]

Both call `calibration.recalibrate.recalibrate` with the same defaults
(`RecalibrationSettings`), so the same data give the same table here and on the review page.

``ITEMS.csv`` is the items format with optional ``se_a``/``se_b``, ``n_responses``, ``status``
(pretest / operational / retired; default operational, or the ``--content`` file's) and
``provisional`` columns — what ``proficio bank export``, ``proficio calibrate`` and this
command's ``--out`` write. The responses may carry an ``option`` column (the chosen option id);
with ``--content`` (the bank's content: statuses, skills, options and keys) every item also gets
its distractor analysis and the "possibly miskeyed" check.

``--out`` writes every item that has parameters — the new ones where estimated, the current
ones for anchors and for items that were not calibrated — with ``status``, ``role``,
``action`` and ``reason`` columns, so `proficio fit`, `proficio drift` and
``proficio calibrate --anchors`` take it as it is.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

from calibration import EMProgress
from calibration.drift import DriftRule
from calibration.recalibrate import (
    DEFAULT_PRIOR_A_SD,
    MODELS,
    MODES,
    CurrentParameters,
    ItemKeys,
    PublishRules,
    Recalibration,
    RecalibrationSettings,
    recalibrate,
)
from calibration.spec import read_item_specs
from irt import Bank
from irt.io import read_items_csv, read_responses_csv, write_items_csv
from web.commands.fit import print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recalibrate", help="recalibrate against the current parameters, with "
                                           "fit, drift, item analysis and a recommendation",
                       description="What the web's calibration job does, on files: the same "
                                   "function, the same defaults, the same table.")
    p.add_argument("responses", metavar="RESPONSES.csv",
                   help="person_id,item_id,response[,option] (rows in administration order)")
    p.add_argument("--current", required=True, metavar="ITEMS.csv",
                   help="the current parameters (items format; se_*, n_responses, status, "
                        "provisional columns read when present)")
    p.add_argument("--content", metavar="BANK",
                   help="the bank's content (.json or content .csv) for option keys: enables "
                        "the distractor analysis and the miskey check")
    p.add_argument("--items", metavar="SPEC.csv",
                   help="item_id,skill[,model] of items without current parameters")
    defaults = RecalibrationSettings()
    rules = PublishRules()
    p.add_argument("--model", default=defaults.model, choices=MODELS)
    p.add_argument("--mode", default=defaults.mode, choices=MODES)
    p.add_argument("--prior-a", type=float, default=DEFAULT_PRIOR_A_SD, metavar="SD",
                   help=f"lognormal(0, SD) slope prior (default {DEFAULT_PRIOR_A_SD})")
    p.add_argument("--no-prior-a", action="store_true", help="plain ML for the slopes")
    p.add_argument("--alpha", type=float, default=defaults.fit_alpha,
                   help=f"item fit level (default {defaults.fit_alpha})")
    p.add_argument("--min-shift-b", type=float, default=defaults.drift.min_shift_b)
    p.add_argument("--z", type=float, default=defaults.drift.z_crit)
    p.add_argument("--min-responses", type=int, default=rules.min_responses,
                   help=f"publish rule: fewest responses (default {rules.min_responses})")
    p.add_argument("--max-se-b", type=float, default=rules.max_se_b,
                   help=f"publish rule: largest SE(b) (default {rules.max_se_b})")
    p.add_argument("--allow-less-precise", action="store_true",
                   help="publish rule: allow replacing a parameter whose SE is smaller")
    p.add_argument("--allow-misfit", action="store_true", help="publish rule: ignore misfit")
    p.add_argument("--allow-drift", action="store_true", help="publish rule: ignore drift")
    p.add_argument("--allow-miskeyed", action="store_true",
                   help="publish rule: ignore the miskey check")
    p.add_argument("--out", metavar="NEW_ITEMS.csv", help="parameters with status and action")
    p.add_argument("--table", metavar="TABLE.csv", help="the review table (all columns)")
    p.add_argument("--report", metavar="REPORT.json", help="the whole result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress, no table on screen")
    p.set_defaults(handler=run)


def settings_from(args: argparse.Namespace) -> RecalibrationSettings:
    return RecalibrationSettings(
        model=args.model, mode=args.mode,
        prior_a_sd=None if args.no_prior_a else args.prior_a, fit_alpha=args.alpha,
        drift=DriftRule(min_shift_b=args.min_shift_b, z_crit=args.z),
        rules=PublishRules(min_responses=args.min_responses, max_se_b=args.max_se_b,
                           require_more_precise=not args.allow_less_precise,
                           hold_misfit=not args.allow_misfit, hold_drift=not args.allow_drift,
                           hold_miskeyed=not args.allow_miskeyed))


def _content(path: str) -> tuple[ItemKeys, dict[str, str], dict[str, str]]:
    """Keys, statuses and skills from the bank's content file."""
    from item_bank.content import read_bank_json, read_content_csv

    doc = read_content_csv(path) if Path(path).suffix.lower() == ".csv" else read_bank_json(path)
    single = [it for it in doc.items if it.response_type == "single"]  # one key each
    keys = ItemKeys({it.external_id: tuple(o.id for o in it.options) for it in single},
                    {it.external_id: it.key for it in single})
    return (keys, {it.external_id: it.status for it in doc.items},
            {it.external_id: it.skill for it in doc.items})


def table_cells(row: tuple) -> list[str]:
    """A row of `Recalibration.to_rows` as CSV text (the CLI table and the web's CSV)."""
    return ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row]


def write_table(path: str | Path, result: Recalibration) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(result.COLUMNS)
        for row in result.to_rows():
            w.writerow(table_cells(row))


def write_parameters(path: str | Path, result: Recalibration) -> int:
    """Every item with parameters (new where estimated, else current), with status columns."""
    with_params = [(it, p) for it in result.items if (p := it.new or it.current) is not None]
    rows = [it for it, _ in with_params]
    bank = Bank.from_params(p for _, p in with_params)

    def num(x: float | None) -> str:
        return "" if x is None else repr(float(x))

    extra = {
        "se_a": [num(it.se_a if it.new else it.current_se_a) for it in rows],
        "se_b": [num(it.se_b if it.new else it.current_se_b) for it in rows],
        "n_responses": [str(it.n_responses) if it.new else
                        ("" if it.current_n is None else str(it.current_n)) for it in rows],
        "status": [it.status for it in rows],
        "provisional": ["true" if (it.current_provisional and it.role != "estimated")
                        else "false" for it in rows],
        "role": [it.role for it in rows],
        "action": [it.action for it in rows],
        "reason": [it.action_reason for it in rows],
    }
    write_items_csv(path, bank, extra)
    return len(rows)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    table = read_items_csv(args.current)
    current = CurrentParameters.from_table(table)
    has_option = _has_column(args.responses, "option")
    log = read_responses_csv(args.responses, keep=("option",) if has_option else ())
    skills = {s.item_id: s.skill for s in read_item_specs(args.items)} if args.items else {}
    keys = choices = None
    if args.content:
        keys, statuses, content_skills = _content(args.content)
        skills = content_skills | skills
        if "status" not in table.extra:   # the bank's statuses (pretest items never anchor)
            current = replace(current, status=tuple(statuses.get(i, "operational")
                                                    for i in current.bank.item_ids))
        choices = [str(c) for c in log.extra["option"]] if has_option \
            else [""] * log.data.n_responses

    def progress(p: EMProgress) -> None:
        if not args.quiet and p.cycle % 25 == 0:
            print(f"  skill {p.skill}: EM cycle {p.cycle}, log-likelihood {p.loglik:.1f}",
                  file=sys.stderr)

    result = recalibrate(log, current, settings, skills=skills, keys=keys, choices=choices,
                         callback=progress)
    if not args.quiet:
        _summary(result)
    if args.table:
        write_table(args.table, result)
    if args.report:
        Path(args.report).write_text(json.dumps(result.to_dict(), indent=1) + "\n",
                                     encoding="utf-8")
    if args.out:
        n = write_parameters(args.out, result)
        if not args.quiet:
            print(f"wrote {n} items to {args.out}")
    return 0


def _has_column(path: str, name: str) -> bool:
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    return name in [h.strip() for h in header]


def _summary(result: Recalibration) -> None:
    print(result.headline)
    for s in result.scales:
        print(f"skill {s.skill}: {s.statement}; population mean {s.latent_mean:+.3f}, "
              f"SD {s.latent_sd:.3f}; reliability {s.marginal_reliability:.3f} (model), "
              f"{s.empirical_reliability:.3f} (empirical, {s.n_persons} candidates)")
    if result.correlations is not None:
        c = result.correlations
        pairs = [f"{a}–{b} {c.matrix[i, j]:.2f}" for i, a in enumerate(c.skills)
                 for j, b in enumerate(c.skills) if j > i]
        print("latent correlations: " + ", ".join(pairs))
    keep = ("item_id", "role", "n", "b_current", "b_new", "se_b_new", "fit_method", "fit_p",
            "drift_delta_b", "drift_z_b", "drift_flag", "miskeyed", "action", "reason")
    idx = [result.COLUMNS.index(c) for c in keep]
    print_table(keep, [[r[k] for k in idx] for r in result.to_rows()])
    counts = {a: sum(1 for it in result.items if it.action == a)
              for a in ("publish", "review", "hold")}
    est = [it for it in result.items if it.role == "estimated"]
    print(f"\n{counts['publish']} to publish, {counts['review']} to review, {counts['hold']} "
          f"held; misfit {sum(1 for it in est if it.fit and it.fit.flagged)}, drift "
          f"{sum(1 for it in est if it.drift and it.drift.flagged)}, possibly miskeyed "
          f"{sum(1 for it in result.items if it.analysis and it.analysis.possibly_miskeyed)}"
          f" of {len(est)} estimated items")
    for it in result.items:
        an = it.analysis
        if an is not None and an.possibly_miskeyed:
            opts = ", ".join(f"{o.option}{'*' if o.is_key else ''} {o.share:.2f}/"
                             f"{o.point_biserial:+.2f}" for o in an.options)
            print(f"possibly miskeyed {it.item_id}: {an.reason} (option share/point-biserial, "
                  f"* = key: {opts})")
    r = result.settings.rules
    print(f"publish rules: >= {r.min_responses} responses, SE(b) <= {r.max_se_b}"
          + (", new SE not larger than the current" if r.require_more_precise else "")
          + (", no misfit" if r.hold_misfit else "") + (", no drift" if r.hold_drift else "")
          + (", not miskeyed" if r.hold_miskeyed else ""))
    for w in result.warnings:
        print(f"warning: {w}")
