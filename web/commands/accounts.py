"""``proficio org create|list``, ``proficio staff create``,
``proficio assessment create|list|language|security``:
set up an installation without the demo. Passwords are generated (printed once) unless given on
stdin."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from engine import Blueprint
from item_bank import repository
from item_bank.forensics_models import DEFAULT_RETAKE_WINDOW_DAYS, check_security
from item_bank.models import (
    LANGUAGES,
    ROLES,
    Assessment,
    Invitation,
    Organisation,
    Skill,
    StaffUser,
)
from item_bank.security import new_password
from item_bank.stacks import STACKS, excluding_stacks
from web.commands.db import add_url_option, database
from web.services import accounts, audit
from web.services.feasibility import (
    DEFAULT_MAX_EXPOSURE,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MIN_PER_SKILL,
    DEFAULT_OVERALL_SE,
    DesignChoices,
    choices_blueprint,
    describe,
    design_assessment,
)
from web.services.reports import SCALE_MEAN, SCALE_SD

DEFAULT_CHOICES = (DEFAULT_OVERALL_SE, DEFAULT_MAX_ITEMS, DEFAULT_MIN_PER_SKILL,
                   DEFAULT_MAX_EXPOSURE)


def register(sub: argparse._SubParsersAction) -> None:
    org = sub.add_parser("org", help="organisations").add_subparsers(
        dest="org_command", metavar="ACTION", required=True)
    o = org.add_parser("create", help="create an organisation")
    o.add_argument("slug")
    o.add_argument("name")
    add_url_option(o)
    o.set_defaults(handler=create_org)
    ol = org.add_parser("list", help="list the organisations (slug, name, staff, assessments)")
    add_url_option(ol)
    ol.set_defaults(handler=list_orgs)

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
    p = staff.add_parser("set-password", help="set a staff member's password (when e-mail "
                                               "reset is not available); signs them out")
    p.add_argument("--email", required=True)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of generating one")
    add_url_option(p)
    p.set_defaults(handler=set_staff_password)
    r = staff.add_parser("set-role", help="change a staff member's role; signs them out")
    r.add_argument("--org", required=True, help="organisation slug")
    r.add_argument("--email", required=True)
    r.add_argument("--role", required=True, choices=ROLES)
    add_url_option(r)
    r.set_defaults(handler=set_staff_role)

    t = staff.add_parser("reset-2fa", help="turn off a staff member's two-step sign-in (lost "
                                           "authenticator and recovery codes)")
    t.add_argument("--email", required=True)
    add_url_option(t)
    t.set_defaults(handler=reset_staff_2fa)

    audit = sub.add_parser("audit", help="the audit log of staff actions").add_subparsers(
        dest="audit_command", metavar="ACTION", required=True)
    e = audit.add_parser("export", help="an organisation's audit log as CSV or JSON")
    e.add_argument("--org", required=True, help="organisation slug")
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--out", default=None, help="file to write (default: standard output)")
    add_url_option(e)
    e.set_defaults(handler=export_audit)

    assessment = sub.add_parser("assessment", help="assessments").add_subparsers(
        dest="assessment_command", metavar="ACTION", required=True)
    a = assessment.add_parser("create", help="create an assessment (a named blueprint)")
    a.add_argument("--org", required=True, help="organisation slug")
    a.add_argument("--slug", required=True)
    a.add_argument("--name", required=True)
    a.add_argument("--blueprint", default=None,
                   help="blueprint JSON file (engine format); default: every skill of the "
                        "bank, stopping on the overall score's SE with 2 items per skill at "
                        "least, exposure control tuned on the bank (docs/recruiter-guide.md)")
    a.add_argument("--skills", default=None, metavar="SKILL,SKILL",
                   help="the skills to include (default: every skill of the bank)")
    a.add_argument("--weight", action="append", default=[], metavar="SKILL=W",
                   help="a skill's weight in the overall score (repeat; default: equal)")
    a.add_argument("--overall-se", type=float, default=DEFAULT_OVERALL_SE,
                   help="target SE of the overall score (default: %(default)s)")
    a.add_argument("--max-items", type=int, default=DEFAULT_MAX_ITEMS,
                   help="maximum number of questions (default: %(default)s)")
    a.add_argument("--min-per-skill", type=int, default=DEFAULT_MIN_PER_SKILL,
                   help="minimum number of questions per skill (default: %(default)s)")
    a.add_argument("--no-exposure-control", action="store_true",
                   help="always serve the most informative item (everyone sees the same test)")
    a.add_argument("--max-exposure", type=float, default=DEFAULT_MAX_EXPOSURE,
                   help="largest share of candidates one item may go to, for tuning the "
                        "exposure control (default: %(default)s)")
    a.add_argument("--no-check", action="store_true",
                   help="skip the feasibility simulation (the welcome page then promises "
                        "only the maximum length)")
    a.add_argument("--cut-score", type=float, default=None,
                   help=f"pass/fail cut on the reporting scale ({SCALE_MEAN:g} + {SCALE_SD:g} θ)")
    a.add_argument("--time-limit", type=int, default=None, help="minutes")
    a.add_argument("--language", choices=LANGUAGES, default=None,
                   help="language of the candidate pages (default: the browser's choice)")
    a.add_argument("--exclude-stack", action="append", default=[], metavar="STACK",
                   help=f"never serve items that assume this stack (repeat; one of "
                        f"{', '.join(sorted(STACKS))}); stored as the blueprint's "
                        f"exclude_tags 'stack:STACK'")
    a.add_argument("--bank-org", default=None,
                   help="organisation owning the bank to draw from when it is another's "
                        "library (default: --org)")
    a.add_argument("--bank", default=None,
                   help="bank slug (default: the owning organisation's only bank)")
    a.add_argument("--effort-moderated", action="store_true",
                   help="leave rapid guesses out of the score (effort-moderated scoring; the "
                        "report says how many answers were left out)")
    a.add_argument("--retake-window-days", type=int, default=None, metavar="DAYS",
                   help=f"a candidate invited again with the same e-mail within DAYS gets no "
                        f"item seen before where the bank allows it (default "
                        f"{DEFAULT_RETAKE_WINDOW_DAYS}; 0: off)")
    add_url_option(a)
    a.set_defaults(handler=create_assessment)
    sec = assessment.add_parser("security", help="test-security settings of an assessment "
                                                 "(effort-moderated scoring, retake window)")
    sec.add_argument("--org", required=True, help="organisation slug")
    sec.add_argument("slug")
    sec.add_argument("--effort-moderated", choices=("on", "off"), default=None)
    sec.add_argument("--retake-window-days", type=int, default=None, metavar="DAYS")
    add_url_option(sec)
    sec.set_defaults(handler=set_security)
    lang = assessment.add_parser("language", help="set the candidate pages' language of an "
                                                  "assessment")
    lang.add_argument("--org", required=True, help="organisation slug")
    lang.add_argument("slug")
    lang.add_argument("language", choices=(*LANGUAGES, "browser"),
                      help="a language, or 'browser' for the candidate's browser setting")
    add_url_option(lang)
    lang.set_defaults(handler=set_language)
    al = assessment.add_parser("list", help="list the assessments (organisation, slug, name, "
                                            "limits, invitations)")
    al.add_argument("--org", default=None, help="only this organisation's assessments")
    add_url_option(al)
    al.set_defaults(handler=list_assessments)


def _organisation(session, slug: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        raise ValueError(f"no organisation {slug!r}; create it with `proficio org create`")
    return org


def create_org(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        repository.create_organisation(session, args.slug, args.name)
    print(f"organisation {args.slug!r} created")
    return 0


def create_staff(args: argparse.Namespace) -> int:
    password = _password(args)
    with database(args, write=True) as session:
        org = _organisation(session, args.org)
        user = repository.create_staff_user(session, org, args.email, args.role, password,
                                            name=args.name)
        audit.record(session, actor=None, action="staff.created", target=user.email,
                     detail={"role": user.role}, organisation_id=org.id)
    print(f"{args.role} {args.email.strip().lower()} created in {args.org!r}")
    if not args.password_stdin:
        print(f"password (shown once): {password}")
    return 0


def _password(args: argparse.Namespace) -> str:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else new_password()
    accounts.check_new_password(password, args.email)
    return password


def set_staff_password(args: argparse.Namespace) -> int:
    password = _password(args)
    with database(args, write=True) as session:
        user = accounts.set_password(session, args.email, password)
        email = user.email
    print(f"password of {email} set; their sessions were signed out")
    if not args.password_stdin:
        print(f"password (shown once): {password}")
    return 0


def set_staff_role(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        user = accounts.set_role(session, args.org, args.email, args.role)
        email = user.email
    print(f"{email} is now {args.role} in {args.org!r}; their sessions were signed out")
    return 0


def reset_staff_2fa(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        email = accounts.reset_second_factor(session, args.email).email
    print(f"two-step sign-in of {email} is off; they sign in with their password and can set "
          "it up again")
    return 0


def export_audit(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        org = _organisation(session, args.org)
        if args.format == "csv":
            text = audit.export_csv(session, org.id)
        else:
            text = json.dumps({"events": audit.export_json(session, org.id)}, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"wrote the audit log of {args.org!r} to {args.out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def create_assessment(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        org = _organisation(session, args.org)
        owner = _organisation(session, args.bank_org) if args.bank_org else org
        bank = repository.find_bank(session, owner, args.bank) \
            if (args.bank_org or args.bank or repository.own_banks(session, org.id)) \
            else repository.sole_bank(session)
        given = None
        if args.blueprint:
            with open(args.blueprint, encoding="utf-8") as f:
                given = Blueprint.from_dict(json.load(f))
        skills = list(session.scalars(select(Skill.slug).where(Skill.bank_id == bank.id)
                                      .order_by(Skill.slug)))
        if not skills:
            raise ValueError("the bank has no skills; import items first")
        excluded = excluding_stacks(Blueprint(), args.exclude_stack).exclude_tags
        if given is not None and (args.skills or args.weight or args.no_exposure_control
                                  or (args.overall_se, args.max_items, args.min_per_skill,
                                      args.max_exposure) != DEFAULT_CHOICES):
            raise ValueError("--blueprint: the file is the whole design; leave out --skills, "
                             "--weight, --overall-se, --max-items, --min-per-skill and the "
                             "exposure options")
        choices = None if given is not None else design_choices(args, session, org, bank)
        feasibility = None
        if args.no_check:
            blueprint = excluding_stacks(
                given if given is not None else choices_blueprint(
                    choices if choices is not None else DesignChoices(tuple(skills))),
                args.exclude_stack)
        else:
            blueprint, feasibility = design_assessment(session, skills, given,
                                                       exclude_tags=excluded,
                                                       bank_id=bank.id, choices=choices)
        security: dict[str, object] = {"effort_moderated": bool(args.effort_moderated)}
        if args.retake_window_days is not None:
            security["retake_window_days"] = args.retake_window_days
        made = repository.create_assessment(session, org, args.slug, args.name,
                                            blueprint.to_dict(), cut_score=args.cut_score,
                                            time_limit_minutes=args.time_limit, bank=bank,
                                            security=security)
        made.language = args.language
        made.feasibility = None if feasibility is None else feasibility.to_dict()
    print(f"assessment {args.slug!r} created for {args.org!r}")
    for line in [] if feasibility is None else describe(feasibility):
        print(f"  {line}")
    return 0


def design_choices(args: argparse.Namespace, session: Any, org: Organisation, bank: Any
                   ) -> DesignChoices:
    """The design of `assessment create`'s options (the web form's fields), checked against
    the bank like the form (`DesignChoices.problems`); `ValueError` naming the option."""
    from web.services.assessment_designs import bank_skills

    options = {"skills": "--skills", "weights": "--weight", "overall_se": "--overall-se",
               "max_items": "--max-items", "min_per_skill": "--min-per-skill",
               "max_exposure": "--max-exposure"}
    info = bank_skills(org.id, bank.id, session)
    skills = tuple(s.strip() for s in args.skills.split(",") if s.strip()) if args.skills \
        else tuple(slug for slug, _, n in info.skills if n > 0)
    weights: dict[str, float] = {}
    for spec in args.weight:
        skill, sep, value = spec.partition("=")
        try:
            weights[skill.strip()] = float(value) if sep else float("nan")
        except ValueError:
            weights[skill.strip()] = float("nan")
    if any(given != given for given in weights.values()):
        raise ValueError("--weight: expected SKILL=NUMBER, e.g. --weight databases=2")
    choices = DesignChoices(skills=skills, weights=weights, overall_se=args.overall_se,
                            max_items=args.max_items, min_per_skill=args.min_per_skill,
                            exposure_control=not args.no_exposure_control,
                            max_exposure=args.max_exposure)
    problems = choices.problems(info.items_per_skill)
    if problems:
        field, message = next(iter(problems.items()))
        option = "--weight" if field.startswith("weight") else options.get(field, field)
        raise ValueError(f"{option}: {message}")
    return choices


def _assessment(session: Any, org: Organisation, slug: str, org_slug: str) -> Assessment:
    """The organisation's assessment ``slug``; `ValueError` naming it otherwise."""
    target = session.scalar(select(Assessment).where(Assessment.organisation_id == org.id,
                                                     Assessment.slug == slug))
    if target is None:
        raise ValueError(f"no assessment {slug!r} in {org_slug!r}; "
                         "`proficio assessment list` shows them")
    return target


def set_security(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        org = _organisation(session, args.org)
        target = _assessment(session, org, args.slug, args.org)
        before = check_security(target.security)
        settings = dict(before)
        if args.effort_moderated is not None:
            settings["effort_moderated"] = args.effort_moderated == "on"
        if args.retake_window_days is not None:
            settings["retake_window_days"] = args.retake_window_days
        target.security = check_security(settings)
        shown = dict(target.security)
        if shown != before:  # the same audit entry as a change saved on the web
            audit.record(session, actor=None, action="assessment.updated",
                         target=target.slug,
                         detail={"security": shown, "security_before": before},
                         organisation_id=org.id)
    print(f"assessment {args.slug!r}: effort-moderated scoring "
          f"{'on' if shown['effort_moderated'] else 'off'}, retake window "
          f"{shown['retake_window_days']} days")
    return 0


def set_language(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        org = _organisation(session, args.org)
        target = _assessment(session, org, args.slug, args.org)
        target.language = None if args.language == "browser" else args.language
    print(f"assessment {args.slug!r}: candidate pages in "
          f"{'the browser language' if args.language == 'browser' else args.language}")
    return 0


def list_orgs(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        staff = dict(session.execute(select(StaffUser.organisation_id, func.count())
                                     .group_by(StaffUser.organisation_id)).all())
        tests = dict(session.execute(select(Assessment.organisation_id, func.count())
                                     .group_by(Assessment.organisation_id)).all())
        rows = [(o.slug, o.name, staff.get(o.id, 0), tests.get(o.id, 0))
                for o in session.scalars(select(Organisation).order_by(Organisation.slug))]
    if not rows:
        print("no organisations; create one with `proficio org create SLUG NAME`")
        return 0
    _table(("slug", "name", "staff", "assessments"), rows)
    return 0


def list_assessments(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        stmt = (select(Assessment, Organisation.slug).join(Organisation)
                .order_by(Organisation.slug, Assessment.slug))
        if args.org:
            _organisation(session, args.org)
            stmt = stmt.where(Organisation.slug == args.org)
        invited = dict(session.execute(select(Invitation.assessment_id, func.count())
                                       .group_by(Invitation.assessment_id)).all())
        rows = []
        for a, org_slug in session.execute(stmt):
            bp = Blueprint.from_dict(a.blueprint)
            rows.append((org_slug, a.slug, a.name, f"{bp.max_items}",
                         f"{a.time_limit_minutes} min" if a.time_limit_minutes else "-",
                         "-" if a.cut_score is None else f"{a.cut_score:g}",
                         a.language or "browser", invited.get(a.id, 0)))
    if not rows:
        print("no assessments; create one with `proficio assessment create`")
        return 0
    _table(("organisation", "slug", "name", "max items", "time limit", "cut score",
            "language", "invitations"), rows)
    return 0


def _table(header: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> None:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
