"""``proficio link``: put a new calibration on the scale of a base calibration.

    proficio link NEW.csv BASE.csv [--method stocking-lord] [--purify [--threshold 0.5]]
        [--out LINKED.csv] [--report REPORT.csv|.json]

Common items are the item ids present in both files. Prints (A, B) with
``θ_base = A θ_new + B`` and the anchor table; ``--out`` writes every item of NEW on the base
scale (``a/A``, ``A b + B``; ``se_a``/``se_b…`` columns are rescaled the same way).
"""

from __future__ import annotations

import argparse

from calibration.linking import METHODS, PURIFY_THRESHOLD, link
from irt.io import ItemTable, read_items_csv, write_items_csv
from web.commands.fit import print_table, write_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("link", help="link two calibrations through common items",
                       description="Mean-mean, mean-sigma, Haebara or Stocking-Lord linking of "
                                   "NEW onto the scale of BASE through their common items.")
    p.add_argument("new", metavar="NEW.csv", help="the calibration to move")
    p.add_argument("base", metavar="BASE.csv", help="the reference calibration")
    p.add_argument("--method", default="stocking-lord", choices=METHODS)
    p.add_argument("--purify", action="store_true", help="drop drifting common items")
    p.add_argument("--threshold", type=float, default=PURIFY_THRESHOLD,
                   help=f"purification: |b displacement| in logits (default {PURIFY_THRESHOLD})")
    p.add_argument("--out", metavar="LINKED.csv", help="NEW's items on the base scale")
    p.add_argument("--report", metavar="REPORT.csv", help="anchor table (.csv or .json)")
    p.set_defaults(handler=run)


def rescaled_extra(table: ItemTable, A: float) -> dict[str, list[str]]:
    """Extra columns of an items file with standard errors moved to the new scale."""
    out: dict[str, list[str]] = {}
    for col, values in table.extra.items():
        factor = 1.0 / A if col == "se_a" else A if col.startswith("se_b") else None
        if factor is None:
            out[col] = list(values)
            continue
        moved = []
        for k, v in enumerate(values):
            text = str(v).strip()
            if not text:
                moved.append("")
                continue
            try:
                moved.append(f"{float(text) * factor:.6g}")
            except ValueError:
                raise ValueError(f"item {table.bank.item_ids[k]!r}: field {col!r} is not a "
                                 f"number: {text!r}") from None
        out[col] = moved
    return out


def run(args: argparse.Namespace) -> int:
    new = read_items_csv(args.new)
    base = read_items_csv(args.base)
    res = link(new.bank, base.bank, args.method, purify=args.purify,
               purify_threshold=args.threshold)
    print(f"{res.method}: theta_base = {res.A:.4f} * theta_new + {res.B:+.4f} "
          f"({len(res.common)} common items used"
          + (f", {len(res.dropped)} dropped: {', '.join(res.dropped)}" if res.dropped else "")
          + ")")
    columns = ("item_id", "status", "displacement_b", "note")
    print_table(columns, res.to_rows())
    if args.out:
        write_items_csv(args.out, res.linked, rescaled_extra(new, res.A))
    if args.report:
        write_table(args.report, columns, res.to_rows(),
                    {"method": res.method, "A": res.A, "B": res.B,
                     "n_common": len(res.common), "criterion": res.criterion})
    return 0
