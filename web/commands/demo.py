"""``proficio demo``: the embedded demo database (the Back-End Engineer bank, staff accounts, an
assessment, named invitations), its credentials and links printed, then served.

The database is kept between runs (candidates, reports and calibrations stay); ``--rebuild``
makes a fresh one. It is ``$DATABASE_URL`` when set, else ``demo.sqlite3`` in the instance
folder; the command prints the ``DATABASE_URL`` that other ``proficio`` commands need to work on
the same data.
"""

from __future__ import annotations

import argparse
import os
import shlex

from web.config import instance_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="open (or build) the demo database and serve it")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--invitations", type=int, default=5,
                   help="new named candidate links to issue (default 5)")
    p.add_argument("--rebuild", action="store_true",
                   help="delete the demo database and build a fresh one (SQLite) — by default "
                        "an existing demo database is kept")
    p.add_argument("--no-serve", action="store_true", help="build and print, do not serve")
    p.set_defaults(handler=run)


def demo_url() -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{instance_folder() / 'demo.sqlite3'}"


def run(args: argparse.Namespace) -> int:
    from item_bank.demo import build_demo_database, has_demo, reuse_demo_database
    from web.commands.serve import serve

    if not 0 <= args.invitations <= 1000:
        raise ValueError("--invitations must be between 0 and 1000")
    url = demo_url()
    if not args.rebuild and has_demo(url):
        info = reuse_demo_database(url, n_invitations=args.invitations)
    else:
        info = build_demo_database(url, n_invitations=args.invitations)
    os.environ["DATABASE_URL"] = url
    base = os.environ.setdefault("PROFICIO_BASE_URL", f"http://{args.host}:{args.port}")
    state = "built fresh" if info.fresh else "kept from the last run (--rebuild for a fresh one)"
    print(f"Proficio demo: {info.n_items} items, organisation {info.organisation!r}"
          f"{' (provisional parameters)' if info.provisional else ''}")
    print(f"Database: {info.url} — {state}")
    print("Other proficio commands work on this database with:")
    print(f"  export DATABASE_URL={shlex.quote(url)}")
    print(f"Staff sign-in: {base}/login"
          + ("" if info.fresh else " (new passwords: the old ones stop working)"))
    for cred in info.staff:
        print(f"  {cred.role:16s} {cred.email}  password: {cred.password}")
    if info.invitation_tokens:
        print("Candidate links (one per candidate):")
        for name, token in zip(info.candidate_names, info.invitation_tokens, strict=True):
            print(f"  {name:20s} {base}/t/{token}")
    if args.no_serve:
        return 0
    return serve(args.host, args.port, args.workers)
