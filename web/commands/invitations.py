"""``proficio invitations create|remind``: bulk invitations, their links, e-mail and reminders.

Links are ``BASE_URL/t/TOKEN``. Tokens are shown only at creation; the database keeps their
hash. The recruiter pages call the same functions (`web.services.staff.create_invitations`,
`web.services.invitations`), so a CSV written here has the columns of the page's download.
E-mail needs ``MAIL_SERVER`` (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from item_bank import db, repository
from web.commands.db import add_url_option, database


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invitations", help="candidate invitations")
    isub = p.add_subparsers(dest="invitations_command", metavar="ACTION", required=True)
    c = isub.add_parser("create", help="create invitations and print or write their links")
    c.add_argument("--assessment", default=None,
                   help="assessment slug (default: the only assessment)")
    c.add_argument("--org", default=None, help="organisation of the assessment")
    who = c.add_mutually_exclusive_group(required=True)
    who.add_argument("--count", type=int, help="this many anonymous invitations")
    who.add_argument("--people", type=Path,
                     help="CSV with a 'name' column and optionally 'email' (one invitation "
                          "per row)")
    c.add_argument("--out", default=None, help="write LINKS.csv instead of printing")
    c.add_argument("--base-url", default=None,
                   help="public address of the web app (default: $PROFICIO_BASE_URL, else "
                        "http://127.0.0.1:5000)")
    c.add_argument("--expires-days", type=int, default=14)
    c.add_argument("--send-email", action="store_true",
                   help="e-mail each person with an address their link (needs MAIL_SERVER)")
    add_url_option(c)
    c.set_defaults(handler=run_create)
    r = isub.add_parser("remind", help="send the due reminders before expiry now (what the "
                                       "scheduler does every minute)")
    add_url_option(r)
    r.set_defaults(handler=run_remind)


def _app(args: argparse.Namespace):
    from web.app import create_app

    return create_app({"DATABASE_URL": db.database_url(args.database_url)})


def run_create(args: argparse.Namespace) -> int:
    from web.services import invitations, staff

    if not 1 <= args.expires_days <= 365:
        raise ValueError("--expires-days must be between 1 and 365")
    base = (args.base_url or os.environ.get("PROFICIO_BASE_URL")
            or "http://127.0.0.1:5000").rstrip("/")
    if args.people is not None:
        people = staff.parse_invitation_csv(args.people.read_bytes())
    else:
        if not 1 <= args.count <= staff.MAX_INVITATIONS_PER_REQUEST:
            raise ValueError(f"--count must be between 1 and "
                             f"{staff.MAX_INVITATIONS_PER_REQUEST}")
        people = [(None, None)] * args.count
    # checks the schema, names the database if it has none
    with database(args, write=False) as session:
        assessment = repository.find_assessment(session, args.assessment, args.org)
        org_id, assessment_id, slug = (assessment.organisation_id, assessment.id,
                                       assessment.slug)
    app = _app(args)
    try:
        with app.app_context():
            issued = staff.create_invitations(org_id, None, assessment_id, people, base,
                                              args.expires_days)
            emails = [email for _, email in people]
            mailed = invitations.email_invitations(issued, emails, assessment_id) \
                if args.send_email else None
    finally:
        app.extensions["proficio.db"].engine.dispose()
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            f.write(invitations.links_csv(issued, emails))
        print(f"wrote {len(issued)} invitation links for {slug!r} to {args.out}")
    else:
        for inv in issued:
            print(inv.link)
    if mailed is not None:
        print(f"e-mailed {mailed.sent} invitation(s)")
        for problem in mailed.problems:
            print(f"not e-mailed: {problem}")
    return 0


def run_remind(args: argparse.Namespace) -> int:
    from web.db import database
    from web.services.invitations import send_reminders

    app = _app(args)
    try:
        with app.app_context():
            if not app.config.get("MAIL_SERVER"):
                raise ValueError("MAIL_SERVER is not set; reminders are sent by e-mail")
            sent = send_reminders(database().engine)
    finally:
        app.extensions["proficio.db"].engine.dispose()
    print(f"sent {sent} reminder(s)")
    return 0
