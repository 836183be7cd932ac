"""``proficio monitor``: the compromised-item monitor of one bank, or of every bank — the
function the job queue runs after completed sessions (`web.services.forensics.monitor_bank`).

    proficio monitor [--org SLUG] [--bank SLUG] [--database-url URL]

Prints, per bank, the responses and items checked and the items newly flagged; the alarms are
on the psychometrician's watch list. Run it from cron when ``PROFICIO_MONITOR_AFTER_SESSION=0``.
"""

from __future__ import annotations

import argparse

from web.commands.db import add_url_option, opened_engine

HELP = "compromised-item monitor: flag items whose answers became easier or much faster"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help=HELP, description=HELP + " (the watch list's alarms)")
    p.add_argument("--org", help="organisation slug (needed with --bank when several "
                                 "organisations exist)")
    p.add_argument("--bank", help="bank slug (default: every bank of the organisation, or of "
                                  "the database)")
    add_url_option(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from item_bank import db
    from item_bank import repository as repo
    from item_bank.models import ItemBank, Organisation
    from web.services.forensics import run_monitor

    with opened_engine(args) as engine:  # run_monitor opens its own transactions
        with db.transaction(engine, write=False) as session:
            org = None
            if args.org:
                org = session.scalar(select(Organisation).where(Organisation.slug == args.org))
                if org is None:
                    raise ValueError(f"no organisation {args.org!r}")
            if args.bank:
                if org is None:
                    found = list(session.scalars(select(ItemBank)
                                                 .where(ItemBank.slug == args.bank)))
                    if len(found) != 1:
                        raise ValueError(f"{len(found) or 'no'} banks are called {args.bank!r}"
                                         + ("; name the organisation with --org SLUG"
                                            if found else ""))
                    banks = [(found[0].id, found[0].slug)]
                else:
                    bank = repo.find_bank(session, org, args.bank)
                    banks = [(bank.id, bank.slug)]
            else:
                stmt = select(ItemBank.id, ItemBank.slug).order_by(ItemBank.id)
                if org is not None:
                    stmt = stmt.where(ItemBank.organisation_id == org.id)
                banks = [(int(i), str(s)) for i, s in session.execute(stmt)]
        for bank_id, slug in banks:
            res = run_monitor(engine, bank_id)
            flagged = ", ".join(res.new_alarms) if res.new_alarms else "none"
            print(f"bank {slug}: {res.n_responses} responses, {res.n_items} operational items "
                  f"monitored, response-time model on {res.rt_items} items; newly flagged: "
                  f"{flagged}; open alarms: {res.open_alarms}")
    return 0
