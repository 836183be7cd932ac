"""``proficio demo``: a fresh embedded demo database (the Back-End Engineer bank, staff
accounts, an assessment, invitations), its credentials and links printed once, then served."""

from __future__ import annotations

import argparse
import os

from web.config import instance_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build a fresh demo database and serve it")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--invitations", type=int, default=5)
    p.add_argument("--no-serve", action="store_true", help="build and print, do not serve")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from item_bank.demo import build_demo_database
    from web.commands.serve import serve

    folder = instance_folder()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{folder / 'demo.sqlite3'}"
    info = build_demo_database(url, n_invitations=args.invitations)
    os.environ["DATABASE_URL"] = url
    base = os.environ.setdefault("PROFICIO_BASE_URL", f"http://{args.host}:{args.port}")
    print(f"Proficio demo: {info.n_items} items, organisation {info.organisation!r}"
          f"{' (provisional parameters)' if info.provisional else ''}")
    print(f"Database: {info.url}")
    print(f"Staff sign-in: {base}/login")
    for cred in info.staff:
        print(f"  {cred.role:16s} {cred.email}  password: {cred.password}")
    print("Candidate links (one per candidate):")
    for token in info.invitation_tokens:
        print(f"  {base}/t/{token}")
    if args.no_serve:
        return 0
    return serve(args.host, args.port, args.workers)
