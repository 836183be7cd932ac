"""``proficio db``: apply and inspect the database migrations.

The database is ``--database-url``, else ``$DATABASE_URL``, else the SQLite file
``proficio.sqlite3`` in the instance folder (``$PROFICIO_INSTANCE`` or ``./instance``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from item_bank import db, repository
from item_bank.models import ItemBank, Organisation


def add_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=None,
                        help="SQLAlchemy/PostgreSQL URL (default: $DATABASE_URL, else the "
                             "instance SQLite file)")


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def add_bank_options(parser: argparse.ArgumentParser, *, owner_help: str = "") -> None:
    """``--org SLUG`` and ``--bank SLUG``: which organisation's bank a command works on."""
    parser.add_argument("--org", default=None,
                        help="organisation owning the bank (default: the database's only bank)"
                             + owner_help)
    parser.add_argument("--bank", default=None,
                        help="bank slug within --org (default: the organisation's only bank)")


def resolve_bank(session: Session, args: argparse.Namespace, *, create: bool = False
                 ) -> ItemBank:
    """The bank named by ``--org``/``--bank``; with ``create``, a missing bank of ``--org`` is
    created (slug ``--bank``, else ``default``)."""
    org = None
    if args.org is not None:
        org = session.scalar(select(Organisation).where(Organisation.slug == args.org))
        if org is None:
            raise ValueError(f"no organisation {args.org!r}; create it with "
                             "`proficio org create`")
    if create and org is not None:
        slug = args.bank or "default"
        exists = any(b.slug == slug for b in repository.own_banks(session, org.id))
        if not exists and (args.bank is not None or not repository.own_banks(session, org.id)):
            return repository.create_bank(session, org, slug, slug.replace("-", " ").title())
    return repository.find_bank(session, org, args.bank)


def open_engine(args: argparse.Namespace, check: bool = True) -> Engine:
    """The engine for the command; refuses a schema that is behind (`item_bank.db.SchemaError`
    is turned into a one-line error naming the database opened and `proficio db upgrade`).

    A SQLite file that did not exist before and turned out to have no schema is removed again,
    so a mistyped or unset ``DATABASE_URL`` leaves no empty database behind."""
    from web.cli import CommandError

    _quiet_alembic(keep_migrations=not check)
    url = db.database_url(getattr(args, "database_url", None))
    path = _sqlite_file(url)
    existed = path is None or path.exists()
    engine = db.create_db_engine(url)
    if check:
        try:
            db.check_schema(engine)
        except db.SchemaError as exc:
            engine.dispose()
            if not existed and path is not None:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    path.with_name(path.name + suffix).unlink(missing_ok=True)
            raise CommandError(str(exc) + _where_hint(url)) from None
    return engine


@contextmanager
def opened_engine(args: argparse.Namespace, check: bool = True) -> Iterator[Engine]:
    """`open_engine` for a ``with`` block, disposed when the block ends (however it ends).

    For commands that hand the engine on (to a function that opens its own transactions, e.g.
    one a batch so that progress is durable) or that need more than one transaction."""
    engine = open_engine(args, check=check)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def database(args: argparse.Namespace, *, write: bool) -> Iterator[Session]:
    """One transaction on the command's database (`open_engine`, schema checked): committed
    when the block ends normally, rolled back on an exception, then the engine is disposed.

    ``write`` says which kind, as `item_bank.db.transaction`: on SQLite a write transaction is
    ``BEGIN IMMEDIATE``, a read one a plain deferred ``BEGIN``."""
    with opened_engine(args) as engine, db.transaction(engine, write=write) as session:
        yield session


def _where_hint(url: str) -> str:
    """Where the URL came from, and the demo's database when that is probably what was meant."""
    if os.environ.get("DATABASE_URL"):
        return " (the database is $DATABASE_URL)"
    from web.config import instance_folder

    hint = " (DATABASE_URL is unset, so the instance database was opened"
    demo = instance_folder() / "demo.sqlite3"
    if demo.exists() and _sqlite_file(url) != demo:
        hint += f"; for the demo's data: export DATABASE_URL=sqlite:///{demo}"
    return hint + ")"


def _quiet_alembic(keep_migrations: bool) -> None:
    """Alembic logs its plugin set-up and context at INFO on every schema check; the CLI shows
    only the migrations it runs (``db upgrade``), unless ``-v`` asked for everything."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if not keep_migrations:
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="database migrations")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dsub.add_parser("upgrade", help="apply the migrations (creates the database if needed)")
    add_url_option(up)
    up.add_argument("--revision", default="head")
    up.set_defaults(handler=run_upgrade)
    cur = dsub.add_parser("current", help="show the schema revision and whether it is current")
    add_url_option(cur)
    cur.set_defaults(handler=run_current)


def run_upgrade(args: argparse.Namespace) -> int:
    with opened_engine(args, check=False) as engine:
        before = db.current_revision(engine)
        reached = db.upgrade(engine, args.revision)
        where = engine.url.render_as_string(hide_password=True)
        print(f"{where}: {before or 'empty'} -> {reached}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    with opened_engine(args, check=False) as engine:
        status = db.schema_status(engine)
        state = "up to date" if status.up_to_date else "behind: run `proficio db upgrade`"
        print(f"revision {status.current or 'none'} (head {status.head}): {state}")
        return 0 if status.up_to_date else 1
