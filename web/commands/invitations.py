"""``proficio invitations create``: bulk invitations; one candidate link per line.

Links are ``BASE_URL/t/TOKEN``. Tokens are shown only here; the database keeps their hash.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt

from item_bank import db, repository
from web.commands.db import add_url_option, open_engine


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invitations", help="candidate invitations")
    isub = p.add_subparsers(dest="invitations_command", metavar="ACTION", required=True)
    c = isub.add_parser("create", help="create N invitations and print their links")
    c.add_argument("--assessment", default=None,
                   help="assessment slug (default: the only assessment)")
    c.add_argument("--org", default=None, help="organisation of the assessment")
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--out", default=None, help="write LINKS.csv instead of printing")
    c.add_argument("--base-url", default="http://127.0.0.1:5000",
                   help="public address of the web app")
    c.add_argument("--expires-days", type=int, default=14)
    add_url_option(c)
    c.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    if not 1 <= args.expires_days <= 365:
        raise ValueError("--expires-days must be between 1 and 365")
    base = args.base_url.rstrip("/")
    engine = open_engine(args)
    try:
        with db.transaction(engine) as session:
            assessment = repository.find_assessment(session, args.assessment, args.org)
            issued = repository.create_invitations(
                session, assessment, args.count, expires_in=dt.timedelta(days=args.expires_days))
            slug = assessment.slug
    finally:
        engine.dispose()
    links = [(i.candidate_public_id, f"{base}/t/{i.token}", i.expires_at.isoformat())
             for i in issued]
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["candidate_id", "link", "expires_at"])
            w.writerows(links)
        print(f"wrote {len(links)} invitation links for {slug!r} to {args.out}")
    else:
        for _, link, _ in links:
            print(link)
    return 0
