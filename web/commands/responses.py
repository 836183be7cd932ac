"""``proficio responses export``: the response log in the DESIGN.md long format.

Columns ``person_id,item_id,response`` (``person_id`` = the candidate's public id) followed by
``skill,session_id,answered_at`` (extra columns, ignored by ``proficio calibrate``). The log is
one bank's (``--org``/``--bank``), with the responses of its owner's candidates and of the
organisations that consented to pooling (``--of ORG`` for one of them).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from contextlib import nullcontext

from item_bank import repository
from web.commands.accounts import _organisation
from web.commands.db import add_bank_options, add_url_option, database, resolve_bank


def _date(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("responses", help="response log")
    rsub = p.add_subparsers(dest="responses_command", metavar="ACTION", required=True)
    exp = rsub.add_parser("export", help="write the response log in long format")
    exp.add_argument("--out", required=True, help="target CSV ('-' for standard output)")
    exp.add_argument("--skill", action="append", default=None, help="only this skill (repeat)")
    exp.add_argument("--since", type=_date, default=None, help="answered at or after (ISO)")
    exp.add_argument("--until", type=_date, default=None, help="answered before (ISO)")
    exp.add_argument("--session-status", action="append", default=None,
                     help="only sessions with this status, e.g. completed (repeat)")
    exp.add_argument("--item-status", action="append", default=None,
                     help="only items with this status, e.g. pretest (repeat)")
    exp.add_argument("--of", default=None, metavar="ORG",
                     help="only responses of this organisation's candidates (default: the "
                          "bank owner's and of the organisations that consented to pooling)")
    add_bank_options(exp)
    add_url_option(exp)
    exp.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        bank = resolve_bank(session, args)
        orgs = repository.pooled_organisations(session, bank)
        if args.of is not None:
            org = _organisation(session, args.of)
            if org.id not in orgs:
                raise ValueError(f"organisation {args.of!r} has not consented to pooling "
                                 f"its responses into bank {bank.slug!r}")
            orgs = [org.id]
        out = repository.export_responses(
            session, skills=args.skill, since=args.since, until=args.until,
            session_statuses=args.session_status, item_statuses=args.item_status,
            bank_id=bank.id, organisation_ids=orgs)
    ctx = nullcontext(sys.stdout) if args.out == "-" else \
        open(args.out, "w", newline="", encoding="utf-8")  # noqa: SIM115
    with ctx as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["person_id", "item_id", "response", "skill", "session_id", "answered_at"])
        d = out.data
        for j in range(d.n_responses):
            at = out.answered_at[j]
            at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
            w.writerow([out.person_ids[d.person[j]], out.item_ids[d.item[j]], int(d.response[j]),
                        out.skills[j], out.session_ids[j], at.isoformat()])
    if args.out != "-":
        print(f"wrote {out.data.n_responses} responses of {out.data.n_persons} candidates to "
              f"{args.out}" + (f" ({out.n_dropped_repeats} repeated answers left out)"
                               if out.n_dropped_repeats else ""))
    return 0
