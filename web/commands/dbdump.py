"""``proficio db export`` / ``proficio db import``: a portable backup of the whole database.

The dump is one JSON document (gzip-compressed when the file name ends in ``.gz``)::

    {"format": "proficio-dump/1", "revision": <alembic revision>, "exported_at": ...,
     "tables": {"<table>": {"columns": [...], "rows": [[...], ...]}, ...}}

Tables are written in foreign-key order (`sqlalchemy.MetaData.sorted_tables`), rows by primary
key, timestamps as ISO 8601 in UTC. The same file restores into SQLite or PostgreSQL, so it also
moves a demo database onto a server. Everything is included — staff password hashes and token
hashes too (never the tokens, which are not stored) — so a dump is as sensitive as the database
and is written with mode 0600.

Import is all or nothing: the target is migrated to the dump's revision when it is empty,
refused when it holds any row or is at another revision, filled in one transaction, and its
PostgreSQL id sequences are moved past the restored ids. The database's own tools (``pg_dump`` /
``sqlite3 .backup``) remain the right choice for large installations; this command is the
documented, backend-neutral path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Date, DateTime, Engine, Table, func, insert, select, text

from item_bank import db
from item_bank.models import Base
from web.commands.db import add_url_option

log = logging.getLogger(__name__)

FORMAT = "proficio-dump/1"
BATCH = 1000


class DumpError(ValueError):
    """A dump that cannot be restored (wrong format or revision, non-empty target)."""


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8")


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite returns UTC timestamps without their zone
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _decoder(table: Table) -> list[Callable[[Any], Any]]:
    out: list[Callable[[Any], Any]] = []
    for col in table.columns:
        if isinstance(col.type, DateTime):
            out.append(lambda v: None if v is None else dt.datetime.fromisoformat(v))
        elif isinstance(col.type, Date):
            out.append(lambda v: None if v is None else dt.date.fromisoformat(v))
        else:
            out.append(lambda v: v)
    return out


def export_database(engine: Engine, target: str | Path) -> dict[str, int]:
    """Write every table of ``engine`` to ``target``; returns the row count per table."""
    revision = db.current_revision(engine)
    if revision is None:
        raise DumpError("the database has no schema; nothing to export")
    path = Path(target)
    counts: dict[str, int] = {}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    with engine.connect() as conn, _open(path, "w") as f:
        f.write(json.dumps({"format": FORMAT, "revision": revision,
                            "exported_at": dt.datetime.now(dt.UTC).isoformat()})[:-1])
        f.write(', "tables": {')
        for k, table in enumerate(Base.metadata.sorted_tables):
            columns = [c.name for c in table.columns]
            order = list(table.primary_key.columns) or list(table.columns)
            f.write(("," if k else "") + f"\n{json.dumps(table.name)}: ")
            f.write(f'{{"columns": {json.dumps(columns)}, "rows": [')
            n = 0
            for row in conn.execute(select(table).order_by(*order)):
                f.write(("," if n else "") + "\n" +
                        json.dumps([_encode(v) for v in row], ensure_ascii=False))
                n += 1
            f.write("]}")
            counts[table.name] = n
        f.write("\n}}\n")
    log.info("exported %d rows of %d tables to %s", sum(counts.values()), len(counts), path)
    return counts


def import_database(engine: Engine, source: str | Path) -> dict[str, int]:
    """Restore a dump into an empty database (migrated first when it has no schema)."""
    path = Path(source)
    try:
        with _open(path, "r") as f:
            dump = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as exc:
        raise DumpError(f"{path}: not a readable {FORMAT} file ({exc})") from None
    if not isinstance(dump, dict) or dump.get("format") != FORMAT:
        raise DumpError(f"{path}: field 'format': expected {FORMAT!r}")
    tables = dump.get("tables")
    if not isinstance(tables, dict):
        raise DumpError(f"{path}: field 'tables': expected an object")
    known = {t.name: t for t in Base.metadata.sorted_tables}
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise DumpError(f"{path}: field 'tables': unknown table(s) {unknown}")
    current = db.current_revision(engine)
    if current is None:
        db.upgrade(engine, dump["revision"])
    elif current != dump["revision"]:
        raise DumpError(f"the database is at revision {current}, the dump at "
                        f"{dump['revision']}; restore into an empty database")
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if conn.execute(select(func.count()).select_from(table)).scalar_one():
                raise DumpError(f"the database is not empty (table {table.name!r} has rows); "
                                "restore into an empty database")
        for table in Base.metadata.sorted_tables:
            block = tables.get(table.name)
            if block is None:
                counts[table.name] = 0
                continue
            columns = block.get("columns")
            expected = [c.name for c in table.columns]
            if columns != expected:
                raise DumpError(f"{path}: table {table.name!r}: field 'columns': expected "
                                f"{expected}, got {columns}")
            decode = _decoder(table)
            rows = block.get("rows") or []
            for start in range(0, len(rows), BATCH):
                batch = []
                for k, row in enumerate(rows[start:start + BATCH], start=start):
                    if not isinstance(row, list) or len(row) != len(columns):
                        raise DumpError(f"{path}: table {table.name!r} row {k + 1}: expected "
                                        f"{len(columns)} values")
                    batch.append({c: d(v) for c, d, v in zip(columns, decode, row,
                                                              strict=True)})
                conn.execute(insert(table), batch)
            counts[table.name] = len(rows)
        if engine.dialect.name == "postgresql":
            _advance_sequences(conn)
    log.info("imported %d rows of %d tables from %s", sum(counts.values()), len(counts), path)
    return counts


def _advance_sequences(conn: Any) -> None:
    """Move each serial id sequence past the largest restored id (explicit ids do not)."""
    for table in Base.metadata.sorted_tables:
        for col in table.primary_key.columns:
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": table.name, "c": col.name}).scalar()
            if seq is None:
                continue
            top = conn.execute(select(func.max(col))).scalar()
            conn.execute(text("SELECT setval(:s, :v, :called)"),
                         {"s": seq, "v": top or 1, "called": top is not None})


def _subparsers_of_db(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    parser = sub.choices.get("db")
    if parser is None:  # web/commands/db.py registers ``proficio db`` first (sorted order)
        raise RuntimeError("the 'db' command must be registered before its export/import")
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register(sub: argparse._SubParsersAction) -> None:
    dsub = _subparsers_of_db(sub)
    exp = dsub.add_parser("export", help="write the whole database to a portable JSON dump")
    add_url_option(exp)
    exp.add_argument("--out", required=True, help="target file (.json, or .json.gz)")
    exp.set_defaults(handler=run_export)
    imp = dsub.add_parser("import", help="restore a dump into an empty database")
    add_url_option(imp)
    imp.add_argument("file", help="a file written by `proficio db export`")
    imp.set_defaults(handler=run_import)


def run_export(args: argparse.Namespace) -> int:
    from web.commands.db import opened_engine

    with opened_engine(args) as engine:
        counts = export_database(engine, args.out)
    print(f"{args.out}: {sum(counts.values())} rows from {len(counts)} tables")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from web.cli import CommandError
    from web.commands.db import opened_engine

    if not Path(args.file).is_file():
        raise FileNotFoundError(f"{args.file}: no such file")
    with opened_engine(args, check=False) as engine:
        try:
            counts = import_database(engine, args.file)
        except DumpError as exc:
            raise CommandError(str(exc)) from None
    print(f"{args.file}: {sum(counts.values())} rows restored into {len(counts)} tables")
    return 0
