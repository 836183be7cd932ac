"""``proficio drift``: parameter drift of common items between two calibrations.

    proficio drift CURRENT.csv NEW.csv [--method stocking-lord] [--no-purify]
        [--min-shift-b 0.3] [--min-ratio-a 0.25] [--z 2.58] [--out DRIFT.csv|.json]

NEW is linked onto CURRENT's scale first (with anchor purification by default); standard errors
come from the ``se_a``/``se_b`` (or ``se_b1…``) columns when the files have them.
"""

from __future__ import annotations

import argparse

import numpy as np

from calibration.drift import MIN_RATIO_A, MIN_SHIFT_B, Z_CRIT, ParameterErrors, drift
from calibration.linking import METHODS
from irt.io import read_items_csv
from web.commands.fit import print_table, write_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drift", help="item parameter drift between two calibrations",
                       description="Link NEW onto CURRENT, then test every common item for a "
                                   "change in a and b.")
    p.add_argument("current", metavar="CURRENT.csv", help="the published parameters")
    p.add_argument("new", metavar="NEW.csv", help="the new calibration")
    p.add_argument("--method", default="stocking-lord", choices=METHODS)
    p.add_argument("--no-purify", action="store_true", help="keep every common item as anchor")
    p.add_argument("--min-shift-b", type=float, default=MIN_SHIFT_B,
                   help=f"smallest |Δb| that counts (default {MIN_SHIFT_B})")
    p.add_argument("--min-ratio-a", type=float, default=MIN_RATIO_A,
                   help=f"smallest |Δa|/a that counts (default {MIN_RATIO_A})")
    p.add_argument("--z", type=float, default=Z_CRIT, help=f"|z| threshold (default {Z_CRIT})")
    p.add_argument("--out", metavar="DRIFT.csv", help="drift table (.csv or .json)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cur = read_items_csv(args.current)
    new = read_items_csv(args.new)
    res = drift(cur.bank, new.bank, se_current=ParameterErrors.from_table(cur),
                se_new=ParameterErrors.from_table(new), method=args.method,
                purify=not args.no_purify, min_shift_b=args.min_shift_b,
                min_ratio_a=args.min_ratio_a, z_crit=args.z)
    for skill, link in zip(res.link_skills, res.linkings, strict=True):
        print(f"skill {skill}: linked with {link.method}: A = {link.A:.4f}, B = {link.B:+.4f}; "
              f"{len(link.common)} anchors" + (f", dropped {', '.join(link.dropped)}"
                                               if link.dropped else ""))
    rows = res.to_rows()
    keep = ("item_id", "anchor", "a_current", "a_new", "z_a", "b_current", "b_new", "diff_b",
            "z_b", "evidence", "flag")
    idx = [res.COLUMNS.index(c) for c in keep]
    print_table(keep, [[r[k] for k in idx] for r in rows])
    print(f"\n{int(np.sum(res.flagged))} of {len(rows)} common items drift "
          f"(b: |Δb| >= {res.min_shift_b} and |z| >= {res.z_crit}; "
          f"a: |Δa|/a >= {res.min_ratio_a} and |z| >= {res.z_crit})")
    if args.out:
        meta: dict[str, object] = {"method": args.method}
        for skill, link in zip(res.link_skills, res.linkings, strict=True):
            meta[f"A[{skill}]"], meta[f"B[{skill}]"] = link.A, link.B
        write_table(args.out, res.COLUMNS, rows, meta)
    return 0
