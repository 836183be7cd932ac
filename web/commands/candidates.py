"""``proficio candidates export|erase|retention`` and ``proficio sessions replay``: the
accountability functions of the web pages (`web.services.privacy`, `web.services.replay`) on
the command line, for operators and auditors.

``candidates retention`` runs the retention erasure once — the same function the job queue's
scheduler runs every minute (`web.services.privacy.erase_expired`).
"""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy import select

from item_bank.models import Organisation
from web.commands.db import add_url_option, database, opened_engine


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("candidates", help="candidates' data: export, erasure, retention")
    csub = c.add_subparsers(dest="candidates_command", metavar="ACTION", required=True)
    e = csub.add_parser("export", help="everything stored about one candidate, as JSON "
                                       "(right of access)")
    e.add_argument("--org", required=True, help="organisation slug")
    e.add_argument("public_id")
    e.add_argument("--out", help="file to write (default: standard output)")
    add_url_option(e)
    e.set_defaults(handler=run_export)
    r = csub.add_parser("erase", help="erase one candidate's personal data (audit-logged)")
    r.add_argument("--org", required=True, help="organisation slug")
    r.add_argument("public_id")
    add_url_option(r)
    r.set_defaults(handler=run_erase)
    t = csub.add_parser("retention", help="erase candidates past their organisation's "
                                          "retention period now (what the scheduler does)")
    add_url_option(t)
    t.set_defaults(handler=run_retention)
    s = sub.add_parser("sessions", help="session replay (re-scoring check, proficio-replay/1)")
    ssub = s.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    p = ssub.add_parser("replay", help="re-score a session and re-run its item selection; "
                                       "JSON proficio-replay/1; exit 1 if not reproduced")
    p.add_argument("--org", required=True, help="organisation slug")
    p.add_argument("session_id", type=int)
    p.add_argument("--out", help="file to write (default: standard output)")
    add_url_option(p)
    p.set_defaults(handler=run_replay)


def _org_id(session, slug: str) -> int:
    org = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        raise ValueError(f"no organisation {slug!r}")
    return int(org.id)


def _write(data: object, out: str | None) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


def run_export(args: argparse.Namespace) -> int:
    from web.services.privacy import candidate_export
    from web.services.staff import NotFound

    with database(args, write=False) as session:
        try:
            data = candidate_export(_org_id(session, args.org), args.public_id, session)
        except NotFound:
            raise ValueError(f"no candidate {args.public_id!r} in {args.org!r}") from None
    _write(data, args.out)
    return 0


def run_erase(args: argparse.Namespace) -> int:
    from web.services.privacy import erase_requested
    from web.services.staff import NotFound

    with database(args, write=True) as session:
        try:
            done = erase_requested(session, _org_id(session, args.org), args.public_id, None)
        except NotFound:
            raise ValueError(f"no candidate {args.public_id!r} in {args.org!r}") from None
    print("erased" if done else "already erased")
    return 0


def run_retention(args: argparse.Namespace) -> int:
    from web.services.privacy import erase_expired

    with opened_engine(args) as engine:
        n = erase_expired(engine)
    print(f"erased the personal data of {n} candidate(s)")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from web.services.replay import session_replay
    from web.services.staff import NotFound

    with database(args, write=False) as session:
        try:
            rep = session_replay(_org_id(session, args.org), args.session_id, session)
        except NotFound:
            raise ValueError(f"no session {args.session_id} in {args.org!r}") from None
        data = rep.to_json()
    _write(data, args.out)
    ver = data["verification"]
    return 0 if ver["rescoring_reproduced"] else 1  # type: ignore[index]
