"""Database URLs, engines and migrations.

Where the data lives:

* ``DATABASE_URL`` when set: ``postgresql://user@host:port/db`` (driven by psycopg 3; the
  ``postgres://`` and ``postgresql://`` spellings are accepted) or any SQLAlchemy URL;
* otherwise the SQLite file ``proficio.sqlite3`` in the instance folder, which is
  ``$PROFICIO_INSTANCE`` when set and ``./instance`` otherwise (created on first use).

SQLite connections get ``PRAGMA foreign_keys=ON``, ``journal_mode=WAL`` (file databases) and a
busy timeout, so concurrent writers wait instead of failing. Migrations are Alembic scripts shipped
inside the package (``item_bank/migrations``); `upgrade` applies them and `check_schema` refuses a
database that is behind, naming the command that fixes it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_FILENAME = "proficio.sqlite3"
#: Milliseconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A pooled server connection idle for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0


class SchemaError(RuntimeError):
    """The database schema does not match this version of Proficio."""


def instance_path() -> Path:
    """The instance folder: ``$PROFICIO_INSTANCE`` or ``./instance``."""
    return Path(os.environ.get("PROFICIO_INSTANCE") or "instance").resolve()


def normalize_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` to the psycopg 3 driver; keep other URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$DATABASE_URL``, else the instance SQLite file."""
    chosen = url or os.environ.get("DATABASE_URL")
    if chosen:
        return normalize_url(chosen)
    folder = instance_path()
    return f"sqlite:///{folder / SQLITE_FILENAME}"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is disabled so that SQLAlchemy emits BEGIN itself
    # (the SQLAlchemy-documented recipe; needed for SAVEPOINTs and BEGIN IMMEDIATE).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "memory":
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # DEFERRED by default: readers never take the write lock (a request's read session cannot
    # block its own write unit of work). Write transactions use BEGIN IMMEDIATE (`write=True`
    # below): they take the lock up front, so a read-then-write can never fail halfway with
    # SQLITE_BUSY_SNAPSHOT; it waits (busy timeout) for its turn instead.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_db_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine for ``url`` (see `database_url`), with the SQLite settings above.

    For SQLite files the parent folder is created when missing.
    """
    resolved = make_url(database_url(url))
    if resolved.get_backend_name() == "sqlite":
        db = resolved.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(resolved, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(resolved, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use when it has been idle for `IDLE_PING_SECONDS`.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per request,
    which on the answer hot path is about a fifth of PostgreSQL's server time when requests
    come fast. A connection the server dropped (a restart, an idle timeout, a failover) has
    almost always been idle for a while, so it is pinged, and a dead one is replaced before
    the request sees it, as with pre-ping: the checkout event raises `InvalidatePoolError`, the
    pool discards every connection older than that and hands out a new one (SQLAlchemy's
    "pessimistic disconnect handling" through the checkout event). A connection broken within
    the last second of its use fails that one request (the app answers 503 "try again"; no
    answer is stored half-way, the transaction rolls back) and the disconnect invalidates the
    pool in the same way, so the next request reconnects.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as err:
            if dialect.is_disconnect(err, dbapi_conn, None):
                raise InvalidatePoolError(str(err)) from err
            raise


def session_factory(engine: Engine, write: bool = False) -> sessionmaker[Session]:
    """Sessions on ``engine``; ``write=True`` makes SQLite transactions ``BEGIN IMMEDIATE``.

    Use write sessions for units of work that write (they serialize cleanly on SQLite; on
    PostgreSQL the flag changes nothing) and plain sessions for reads.
    """
    bind = engine
    if write and engine.dialect.name == "sqlite":
        bind = engine.execution_options(sqlite_begin="IMMEDIATE")
    return sessionmaker(bind, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine, write: bool = True) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception."""
    with session_factory(engine, write)() as session, session.begin():
        yield session


def rowcount(result: Result[Any]) -> int:
    """The number of rows an UPDATE or DELETE run by ``Session.execute`` matched.

    ``Session.execute`` is typed to return a plain `Result`; for those statements it is a
    `CursorResult`, the type that carries ``rowcount``.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"rowcount needs the CursorResult of an UPDATE or DELETE, got "
                        f"{type(result).__name__}")
    return result.rowcount


# -- migrations --------------------------------------------------------------------------------


def alembic_config(engine_or_url: Engine | str | None = None) -> Any:
    """An Alembic `Config` pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(engine_or_url, Engine):
        cfg.attributes["engine"] = engine_or_url
        cfg.set_main_option("sqlalchemy.url",
                            engine_or_url.url.render_as_string(hide_password=False)
                            .replace("%", "%%"))
    else:
        cfg.set_main_option("sqlalchemy.url", database_url(engine_or_url).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"migrations have {len(heads)} heads; expected exactly one")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine | str | None = None, revision: str = "head") -> str:
    """Apply the migrations up to ``revision``; returns the revision reached."""
    from alembic import command

    eng = engine if isinstance(engine, Engine) else create_db_engine(engine)
    command.upgrade(alembic_config(eng), revision)
    reached = current_revision(eng)
    log.info("database at revision %s", reached)
    return reached or ""


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_status(engine: Engine) -> SchemaStatus:
    return SchemaStatus(current_revision(engine), head_revision())


def check_schema(engine: Engine) -> None:
    """Raise `SchemaError` with the fix (``proficio db upgrade``) unless the schema is at head."""
    status = schema_status(engine)
    if status.up_to_date:
        return
    where = engine.url.render_as_string(hide_password=True)
    if status.current is None:
        raise SchemaError(f"the database {where} has no Proficio schema; "
                          f"run `proficio db upgrade` first")
    from alembic.script import ScriptDirectory

    known = {rev.revision for rev in
             ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}
    if status.current not in known:
        raise SchemaError(f"the database {where} is at schema revision {status.current}, which "
                          f"this version of Proficio does not know (written by a newer "
                          f"version?); upgrade Proficio")
    raise SchemaError(f"the database {where} is at schema revision {status.current} but this "
                      f"version of Proficio needs {status.head}; run `proficio db upgrade`")
