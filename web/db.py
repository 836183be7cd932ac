"""The database lifecycle of the web app: one engine per app, one session per request.

Views read through `get_db()` (closed at teardown); use cases that write run inside
`unit_of_work()`, which commits on success and rolls back on any exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g, has_app_context
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from item_bank.db import check_schema, create_db_engine, session_factory

EXTENSION = "proficio.db"


class Database:
    """The engine and session factory bound to one Flask app."""

    def __init__(self, url: str | None, *, check: bool = True) -> None:
        self.engine: Engine = create_db_engine(url)
        if check:
            check_schema(self.engine)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        #: Write units of work (``BEGIN IMMEDIATE`` on SQLite: they queue instead of failing).
        self.write_sessions: sessionmaker[Session] = session_factory(self.engine, write=True)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self
        app.teardown_appcontext(_close_request_session)


def database() -> Database:
    return current_app.extensions[EXTENSION]


def get_db() -> Session:
    """The request's read session (opened on first use, closed at teardown)."""
    if "db" not in g:
        g.db = database().sessions()
    return g.db


def _close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A write transaction owned by a service function.

    The request's read session is closed first: its snapshot (and, on SQLite, its lock) must not
    outlive a write, and reads after the write then see it.
    """
    if has_app_context():
        _close_request_session(None)
    with database().write_sessions() as session, session.begin():
        yield session
