"""``proficio fit``: item fit, person fit, reliability and plots for calibrated items.

    proficio fit RESPONSES.csv --items ITEMS.csv [--out FIT.csv|FIT.json]
        [--persons PERSONS.csv|.json] [--curves CURVES.csv] [--plots DIR] [--alpha 0.01]

Complete forms get Orlando–Thissen S-X²; sparse (CAT) data a rest-posterior θ-group statistic
(see `calibration.fit`). Also home of the small table/CSV/JSON helpers the other
recalibration-loop commands (dif, link, drift) share.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calibration.fit import (
    administered_reliability,
    empirical_icc,
    information_curves,
    item_fit,
    person_fit,
)
from irt import Bank, SparseResponses
from irt.io import ResponseLog, read_items_csv, read_responses_csv


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="item fit (S-X2), infit/outfit, person fit, reliability",
                       description="Item and person fit of calibrated items on a response "
                                   "file, marginal reliability and conditional SE per skill.")
    p.add_argument("responses", metavar="RESPONSES.csv", help="person_id,item_id,response")
    p.add_argument("--items", required=True, metavar="ITEMS.csv", help="calibrated parameters")
    p.add_argument("--out", metavar="FIT.csv", help="item fit table (.csv or .json)")
    p.add_argument("--persons", metavar="PERSONS.csv", help="person fit lz table (.csv/.json)")
    p.add_argument("--curves", metavar="CURVES.csv",
                   help="test information and conditional SE per skill on a θ grid")
    p.add_argument("--plots", metavar="DIR",
                   help="write empirical-vs-model ICC plots of flagged items and the "
                        "information curves into DIR")
    p.add_argument("--format", default="png", choices=("png", "svg"), help="plot format")
    p.add_argument("--alpha", type=float, default=0.01, help="flag items with p < alpha")
    p.add_argument("--groups", type=int, default=10, help="θ groups on sparse data")
    p.set_defaults(handler=run)


# ------------------------------------------------------------------ shared output helpers


def _cell(value: object) -> object:
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def _text(value: object) -> str:
    if isinstance(value, float | np.floating):
        v = float(value)
        return "" if not math.isfinite(v) else f"{v:.4g}"
    return str(value)


def write_table(path: str | Path, columns: Sequence[str], rows: Sequence[Sequence[object]],
                meta: dict[str, object] | None = None) -> None:
    """Write ``rows`` as CSV (header ``columns``) or, for ``.json``, as
    ``{"meta": …, "rows": [{column: value}]}`` with NaN as null."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        doc = {"meta": {k: _cell(v) for k, v in (meta or {}).items()},
               "rows": [{c: _cell(v) for c, v in zip(columns, row, strict=True)}
                        for row in rows]}
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    if path.suffix.lower() != ".csv":
        raise ValueError(f"output file {str(path)!r}: use a .csv or .json extension")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([_text(v) for v in row])


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]],
                limit: int | None = 60, file=None) -> None:
    """A plain aligned table on the terminal (first ``limit`` rows)."""
    out = file or sys.stdout
    shown = list(rows if limit is None else rows[:limit])
    cells = [[_text(v) for v in row] for row in shown]
    widths = [max([len(c)] + [len(r[k]) for r in cells]) for k, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=out)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
    if limit is not None and len(rows) > limit:
        print(f"... {len(rows) - limit} more rows (use --out for all)", file=out)


# ------------------------------------------------------------------ the command


def _known_items(log: ResponseLog, bank: Bank) -> SparseResponses:
    """The responses to the items of ``bank``. Responses to items the parameters file leaves
    out (an item `proficio calibrate` excluded: no variation or no responses) are dropped with
    a note, so every command accepts the previous one's output; responses out of an item's
    range still raise, naming the line."""
    known = set(bank.item_ids)
    missing = [iid for iid in log.item_ids if iid not in known]
    if not missing:
        return log.for_bank(bank)
    index = {iid: k for k, iid in enumerate(bank.item_ids)}
    remap = np.array([index.get(iid, -1) for iid in log.item_ids], dtype=np.int64)
    keep = remap[log.data.item] >= 0
    print(f"note: {len(missing)} item(s) of the responses are not in the parameters file "
          f"(not calibrated?): {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}; "
          f"their {int(np.sum(~keep))} responses are left out")
    sub = ResponseLog(log.person_ids, tuple(i for i in log.item_ids if i in known),
                      SparseResponses(log.data.person[keep],
                                      np.unique(log.data.item[keep], return_inverse=True)[1],
                                      log.data.response[keep], log.data.n_persons,
                                      len(known & set(log.item_ids))))
    return sub.for_bank(bank)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise ValueError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.groups < 2:
        raise ValueError(f"--groups must be >= 2, got {args.groups}")
    table = read_items_csv(args.items)
    bank = table.bank
    log = read_responses_csv(args.responses)
    data = _known_items(log, bank)
    estimated = None
    if "role" in table.extra:     # the output of `proficio recalibrate`: anchors were fixed
        estimated = np.array([r.strip() != "anchor" for r in table.extra["role"]], dtype=bool)
    res = item_fit(data, bank, alpha=args.alpha, n_groups=args.groups, estimated=estimated)
    rows = res.to_rows()
    # show the informative columns on the terminal, all of them in --out
    keep = ("item_id", "skill", "n", "method", "statistic", "df", "p_value", "infit", "outfit",
            "flag")
    idx = [res.COLUMNS.index(c) for c in keep]
    print_table(keep, [[r[k] for k in idx] for r in rows])
    n_flag = int(np.sum(res.flag_fit))
    print(f"\n{len(rows)} items, {n_flag} flagged at p < {args.alpha} "
          f"({', '.join(sorted(set(res.method)))}); infit/outfit outside 0.7-1.3: "
          f"{int(np.sum(res.flag_mnsq))}")
    curves = information_curves(bank)
    for s, skill in enumerate(curves.skills):
        members = bank.skill_indices(skill)
        in_skill = np.isin(data.item, members)
        given = SparseResponses(data.person[in_skill],
                                np.searchsorted(members, data.item[in_skill]),
                                data.response[in_skill], data.n_persons, members.size)
        given_rel = administered_reliability(given, bank.take(members))
        given_text = (f"{given_rel:.3f} (the tests as administered)" if np.isfinite(given_rel)
                      else "no responses")
        print(f"skill {skill}: marginal reliability {curves.reliability[s]:.3f} (all "
              f"{members.size} items), {given_text}; min SE {np.min(curves.se[:, s]):.3f} at θ = "
              f"{curves.theta[int(np.argmin(curves.se[:, s]))]:+.2f}")
    unreliable = sum(1 for n in res.notes() if "unreliable" in n)
    if unreliable:
        print(f"note: {unreliable} items have fewer than {res.min_responses} responses; "
              f"their fit statistics are unreliable")
    if args.out:
        write_table(args.out, res.COLUMNS, rows, {"alpha": args.alpha})
    if args.persons:
        pf = person_fit(data, bank, person_ids=log.person_ids)
        write_table(args.persons, pf.COLUMNS, pf.to_rows())
        print(f"person fit: {int(np.sum(pf.flag))} of {len(pf.lz)} persons with lz < -1.645")
    if args.curves:
        write_table(args.curves, ("skill", "theta", "information", "se"), curves.to_rows())
    if args.plots:
        from calibration.plots import plot_empirical_icc, plot_information

        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        plot_information(curves, folder / f"information.{args.format}")
        flagged = np.flatnonzero(res.flag_fit | res.flag_mnsq)
        for i in flagged:
            icc = empirical_icc(data, bank, int(i), n_groups=args.groups)
            plot_empirical_icc(icc, folder / f"icc_{bank.item_ids[i]}.{args.format}",
                               max_score=int(bank.n_categories[i]) - 1)
        print(f"plots: {len(flagged) + 1} files in {folder}")
    return 0
