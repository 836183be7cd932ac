"""``proficio bank``: import, export and validate item banks.

Formats follow the path: a folder (``skills.json`` + ``<skill>.json``), ``.json``, ``.csv``
(parameters CSV when the header has ``item_id``; content CSV when it has ``stem``), QTI ``.zip``.
Import validates the whole file first; any error leaves the database unchanged. Every bank is
owned by an organisation: ``--org SLUG [--bank SLUG]`` names it (default: the database's only
bank); ``bank create`` makes one and ``bank library`` publishes it read-only to the other
organisations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from item_bank import repository
from item_bank.content import content_warnings
from item_bank.coverage import coverage_problems, read_coverage_dir
from item_bank.shipped import SHIPPED_BANK, quality_problems
from item_bank.transfer import EXPORT_KINDS, read_bank_file, write_bank_file
from web.commands.accounts import _organisation
from web.commands.db import add_bank_options, add_url_option, database, resolve_bank
from web.services import audit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bank", help="item bank import/export")
    bsub = p.add_subparsers(dest="bank_command", metavar="ACTION", required=True)
    imp = bsub.add_parser("import", help="import items and/or parameters from FILE")
    imp.add_argument("file", nargs="?", help="bank folder, .json, .csv or QTI .zip")
    imp.add_argument("--shipped", action="store_true",
                     help="import the Back-End Engineer bank shipped with Proficio")
    imp.add_argument("--skill", default=None,
                     help="skill for QTI items that do not name one (created if the bank lacks "
                          "it)")
    imp.add_argument("--strict", action="store_true",
                     help="refuse a QTI package with items Proficio cannot deliver (default: "
                          "skip and list them, import the rest)")
    imp.add_argument("--prefix", default=None,
                     help="put PREFIX before every QTI item id (import a package whose ids "
                          "collide with the bank's as new items)")
    imp.add_argument("--replace", action="store_true",
                     help="update items whose external id is already in the bank")
    imp.add_argument("--provisional", action="store_true",
                     help="mark imported parameters provisional")
    add_bank_options(imp, owner_help="; a bank of --org that does not exist yet is created")
    add_url_option(imp)
    imp.set_defaults(handler=run_import)

    exp = bsub.add_parser("export", help="export the bank to FILE")
    exp.add_argument("--out", required=True, help="target .json, .csv or .zip")
    exp.add_argument("--kind", choices=EXPORT_KINDS, default=None,
                     help="format (default from the extension; .csv = parameters)")
    exp.add_argument("--skill", action="append", default=None, help="only this skill (repeat)")
    exp.add_argument("--status", action="append", default=None,
                     help="only items with this status (repeat)")
    exp.add_argument("--plain", action="store_true",
                     help="parameters CSV with the DESIGN.md columns only (no 'provisional'), "
                          "e.g. for `proficio calibrate --items/--anchors`")
    add_bank_options(exp)
    add_url_option(exp)
    exp.set_defaults(handler=run_export)

    create = bsub.add_parser("create", help="create an empty bank owned by --org")
    create.add_argument("--org", required=True, help="owning organisation slug")
    create.add_argument("slug")
    create.add_argument("name")
    create.add_argument("--library", action="store_true",
                        help="publish it as a read-only library for other organisations")
    add_url_option(create)
    create.set_defaults(handler=run_create)

    lib = bsub.add_parser("library", help="publish a bank as a read-only library (or withdraw "
                                          "it with --withdraw)")
    add_bank_options(lib)
    lib.add_argument("--withdraw", action="store_true")
    add_url_option(lib)
    lib.set_defaults(handler=run_library)

    val = bsub.add_parser("validate", help="validate a bank file without a database")
    val.add_argument("file", nargs="?", help="bank folder or file (default: the shipped bank)")
    val.add_argument("--skill", default=None)
    val.add_argument("--strict", action="store_true",
                     help="fail on QTI items Proficio cannot deliver")
    val.set_defaults(handler=run_validate)

    skill = sub.add_parser("skill", help="skills of a bank")
    ssub = skill.add_subparsers(dest="skill_command", metavar="ACTION", required=True)
    sc = ssub.add_parser("create", help="create a skill (or rename an existing one)")
    sc.add_argument("slug", help="skill id, e.g. server_side")
    sc.add_argument("name", help="display name")
    sc.add_argument("--description", default="")
    add_bank_options(sc, owner_help="; a bank of --org that does not exist yet is created")
    add_url_option(sc)
    sc.set_defaults(handler=run_skill_create)
    sl = ssub.add_parser("list", help="list the skills of a bank with their item counts")
    add_bank_options(sl)
    add_url_option(sl)
    sl.set_defaults(handler=run_skill_list)


def _source(args: argparse.Namespace) -> Path:
    if args.shipped:
        return SHIPPED_BANK
    if not args.file:
        raise ValueError("give a FILE or --shipped")
    return Path(args.file)


def run_import(args: argparse.Namespace) -> int:
    path = _source(args)
    doc = read_bank_file(path, default_skill=args.skill,
                         provisional=True if args.provisional else None, strict=args.strict,
                         prefix=args.prefix)
    with database(args, write=True) as session:
        bank = resolve_bank(session, args, create=True)
        rep = repository.import_document(session, doc, replace=args.replace,
                                         bank_id=bank.id)
        audit.record(session, actor=None, action="bank.imported", target=str(path),
                     detail=audit.import_detail(rep), organisation_id=bank.organisation_id)
    print(f"{path}: {rep.skills_created} skills created, {rep.items_created} items created, "
          f"{rep.items_updated} updated, {rep.parameter_versions} parameter versions"
          + (f" (calibration run {rep.calibration_run_id})" if rep.calibration_run_id else ""))
    if rep.media_files:
        print(f"  {rep.media_files} images stored with their items")
    for s in rep.skills_implied:
        print(f"  skill created: {s}")
    for line in rep.skipped:
        print(f"  skipped: {line}")
    for w in rep.warnings:
        print(f"  note: {w}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        bank = resolve_bank(session, args)
        doc = repository.export_document(session, skills=args.skill, statuses=args.status,
                                         bank_id=bank.id)
    if not doc.items:
        raise ValueError("nothing to export: the bank has no matching items")
    kind = write_bank_file(args.out, doc, args.kind, plain=args.plain)
    print(f"wrote {len(doc.items)} items ({len(doc.parameters)} with parameters) to {args.out} "
          f"[{kind}]")
    return 0


def run_create(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        owner = _organisation(session, args.org)
        bank = repository.create_bank(session, owner, args.slug, args.name,
                                      library=args.library)
        bank_id = bank.id
    print(f"bank {args.slug!r} (id {bank_id}) created for {args.org!r}"
          + (", published as a library" if args.library else ""))
    return 0


def run_library(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        bank = resolve_bank(session, args)
        repository.set_library(session, bank, not args.withdraw)
        slug = bank.slug
    print(f"bank {slug!r} is {'no longer' if args.withdraw else 'now'} a library")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else SHIPPED_BANK
    doc = read_bank_file(path, default_skill=args.skill, strict=args.strict)
    print(f"{path}: {len(doc.items)} valid items, {len(doc.parameters)} parameter rows")
    for line in doc.skipped:
        print(f"  skipped: {line}")
    problems = []
    if path.is_dir():
        problems = quality_problems(doc) + coverage_problems(doc, read_coverage_dir(
            path / "coverage"))
    for p in problems:
        print(f"  problem: {p}")
    # writing-quality notes (docs/item-writing-guide.md) never fail validation: each one is a
    # prompt for an author to look at the item, and some are legitimate
    for w in content_warnings(doc.items):
        print(f"  note: {w}")
    return 1 if problems else 0


def run_skill_create(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        bank = resolve_bank(session, args, create=True)
        created = repository.create_skill(session, bank.id, args.slug, args.name,
                                          args.description)
        audit.record(session, actor=None, action="skill.created" if created
                     else "skill.updated", target=args.slug, detail={"name": args.name},
                     organisation_id=bank.organisation_id)
        slug = bank.slug
    print(f"skill {args.slug!r} {'created' if created else 'updated'} in bank {slug!r}")
    return 0


def run_skill_list(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        bank = resolve_bank(session, args)
        rows = repository.skill_counts(session, bank.id)
    if not rows:
        print("no skills yet; create one with `proficio skill create SLUG NAME`")
    for slug, name, n in rows:
        print(f"{slug}\t{n} items\t{name}")
    return 0
