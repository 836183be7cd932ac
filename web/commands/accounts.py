"""``proficio org create``, ``proficio staff create``, ``proficio assessment create``: set up an
installation without the demo. Passwords are generated (printed once) unless given on stdin."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy import select

from engine import Blueprint, SkillSpec
from item_bank import db, repository
from item_bank.models import ROLES, Organisation, Skill
from item_bank.security import new_password
from web.commands.db import add_url_option, open_engine
from web.services.reports import SCALE_MEAN, SCALE_SD


def register(sub: argparse._SubParsersAction) -> None:
    org = sub.add_parser("org", help="organisations").add_subparsers(
        dest="org_command", metavar="ACTION", required=True)
    o = org.add_parser("create", help="create an organisation")
    o.add_argument("slug")
    o.add_argument("name")
    add_url_option(o)
    o.set_defaults(handler=create_org)

    staff = sub.add_parser("staff", help="staff accounts").add_subparsers(
        dest="staff_command", metavar="ACTION", required=True)
    s = staff.add_parser("create", help="create a staff account (argon2-hashed password)")
    s.add_argument("--org", required=True, help="organisation slug")
    s.add_argument("--email", required=True)
    s.add_argument("--role", required=True, choices=ROLES)
    s.add_argument("--name", default="")
    s.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of generating one")
    add_url_option(s)
    s.set_defaults(handler=create_staff)

    assessment = sub.add_parser("assessment", help="assessments").add_subparsers(
        dest="assessment_command", metavar="ACTION", required=True)
    a = assessment.add_parser("create", help="create an assessment (a named blueprint)")
    a.add_argument("--org", required=True, help="organisation slug")
    a.add_argument("--slug", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--blueprint", default=None,
                   help="blueprint JSON file (engine format); default: every skill of the "
                        "bank, 3-6 items each, SE target 0.35")
    a.add_argument("--cut-score", type=float, default=None,
                   help=f"pass/fail cut on the reporting scale ({SCALE_MEAN:g} + {SCALE_SD:g} θ)")
    a.add_argument("--time-limit", type=int, default=None, help="minutes")
    a.add_argument("--bank-org", default=None,
                   help="organisation owning the bank to draw from when it is another's "
                        "library (default: --org)")
    a.add_argument("--bank", default=None,
                   help="bank slug (default: the owning organisation's only bank)")
    add_url_option(a)
    a.set_defaults(handler=create_assessment)


def _organisation(session, slug: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        raise ValueError(f"no organisation {slug!r}; create it with `proficio org create`")
    return org


def create_org(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        with db.transaction(engine) as session:
            repository.create_organisation(session, args.slug, args.name)
    finally:
        engine.dispose()
    print(f"organisation {args.slug!r} created")
    return 0


def create_staff(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else new_password()
    if len(password) < 12:
        raise ValueError("the password must have at least 12 characters")
    engine = open_engine(args)
    try:
        with db.transaction(engine) as session:
            org = _organisation(session, args.org)
            repository.create_staff_user(session, org, args.email, args.role, password,
                                         name=args.name)
    finally:
        engine.dispose()
    print(f"{args.role} {args.email.strip().lower()} created in {args.org!r}")
    if not args.password_stdin:
        print(f"password (shown once): {password}")
    return 0


def create_assessment(args: argparse.Namespace) -> int:
    engine = open_engine(args)
    try:
        with db.transaction(engine) as session:
            org = _organisation(session, args.org)
            owner = _organisation(session, args.bank_org) if args.bank_org else org
            bank = repository.find_bank(session, owner, args.bank) \
                if (args.bank_org or args.bank or repository.own_banks(session, org.id)) \
                else repository.sole_bank(session)
            if args.blueprint:
                with open(args.blueprint, encoding="utf-8") as f:
                    blueprint = Blueprint.from_dict(json.load(f))
            else:
                skills = list(session.scalars(select(Skill.slug).where(Skill.bank_id == bank.id)
                                              .order_by(Skill.slug)))
                if not skills:
                    raise ValueError("the bank has no skills; import items first")
                blueprint = Blueprint(skills=tuple(SkillSpec(s, 3, 6) for s in skills),
                                      min_items=3 * len(skills), max_items=6 * len(skills),
                                      se_target=0.35)
            repository.create_assessment(session, org, args.slug, args.name,
                                         blueprint.to_dict(), cut_score=args.cut_score,
                                         time_limit_minutes=args.time_limit, bank=bank)
    finally:
        engine.dispose()
    print(f"assessment {args.slug!r} created for {args.org!r}")
    return 0
