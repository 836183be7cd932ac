"""``proficio dif``: differential item functioning between two groups of candidates.

    proficio dif RESPONSES.csv --items ITEMS.csv --group COLUMN [--reference R --focal F]
        [--out DIF.csv|DIF.json] [--strata 10]

The group is a column of the response file (constant per person). Mantel–Haenszel with the ETS
A/B/C classes for dichotomous items and an (ordinal) logistic-regression likelihood-ratio test for
every item; a summary by skill follows the item table.
"""

from __future__ import annotations

import argparse

import numpy as np

from calibration.dif import dif
from irt.io import FormatError, read_items_csv, read_responses_csv
from web.commands.fit import print_table, write_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dif", help="DIF: Mantel-Haenszel (ETS A/B/C) and logistic regression",
                       description="Differential item functioning between a reference and a "
                                   "focal group given by a column of the response file.")
    p.add_argument("responses", metavar="RESPONSES.csv",
                   help="person_id,item_id,response plus the group column")
    p.add_argument("--items", required=True, metavar="ITEMS.csv", help="item parameters")
    p.add_argument("--group", required=True, metavar="COLUMN", help="group column name")
    p.add_argument("--reference", help="reference group label (default: the larger group)")
    p.add_argument("--focal", help="focal group label")
    p.add_argument("--strata", type=int, default=10, help="θ strata for MH on sparse data")
    p.add_argument("--min-group", type=int, default=100,
                   help="mark rows with fewer responses per group as unreliable")
    p.add_argument("--out", metavar="DIF.csv", help="item table (.csv or .json)")
    p.set_defaults(handler=run)


def person_groups(log, column: str, source: str) -> np.ndarray:
    """One group label per person; a person with two labels is an error naming the line."""
    labels = log.extra[column]
    out = np.full(log.data.n_persons, None, dtype=object)
    for row, (p, g) in enumerate(zip(log.data.person, labels, strict=True)):
        g = str(g).strip()
        if not g:
            raise FormatError(f"{source} line {log.line_of(row)}: field {column!r} is empty")
        if out[p] is None:
            out[p] = g
        elif out[p] != g:
            raise FormatError(f"{source} line {log.line_of(row)}: person "
                              f"{log.person_ids[p]!r} has {column} {g!r} here but {out[p]!r} "
                              f"on an earlier line")
    return out


def run(args: argparse.Namespace) -> int:
    bank = read_items_csv(args.items).bank
    log = read_responses_csv(args.responses, keep=[args.group])
    data = log.for_bank(bank)
    groups = person_groups(log, args.group, args.responses)
    res = dif(data, bank, groups, reference=args.reference, focal=args.focal,
              n_strata=args.strata, min_group=args.min_group)
    print(f"reference group {res.reference!r}, focal group {res.focal!r} "
          f"(matching on {', '.join(sorted(set(res.matching)))})")
    rows = res.to_rows()
    keep = ("item_id", "skill", "n_reference", "n_focal", "mh_delta", "mh_p", "ets_class",
            "lr_total", "lr_p", "delta_r2", "lr_class", "note")
    idx = [res.COLUMNS.index(c) for c in keep]
    print_table(keep, [[r[k] for k in idx] for r in rows])
    print()
    print_table(res.SKILL_COLUMNS, res.by_skill(), limit=None)
    if args.out:
        write_table(args.out, res.COLUMNS, rows,
                    {"reference": res.reference, "focal": res.focal})
    return 0
