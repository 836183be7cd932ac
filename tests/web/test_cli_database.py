"""`web.commands.db.database` and `opened_engine`: the one transaction (or engine) of a CLI
command — committed or rolled back as a whole, a write transaction ``BEGIN IMMEDIATE`` on
SQLite and a read one a deferred ``BEGIN``, and the engine disposed however the block ends."""

from __future__ import annotations

import argparse

import pytest
from sqlalchemy import event, select

from item_bank import db
from item_bank.models import Organisation
from web.commands import db as commands_db
from web.commands.db import database, opened_engine


@pytest.fixture
def opened(tmp_path, monkeypatch) -> tuple[argparse.Namespace, list, list]:
    """The args of a command on a fresh SQLite database, the SQL each engine began its
    transactions with, and the engines disposed."""
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    db.upgrade(url)
    begins: list[str] = []
    disposed: list[object] = []
    real = commands_db.open_engine

    def spied(args: argparse.Namespace, check: bool = True):  # type: ignore[no-untyped-def]
        engine = real(args, check=check)

        @event.listens_for(engine, "before_cursor_execute")
        def _seen(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
            if statement.startswith("BEGIN"):
                begins.append(statement)

        dispose = engine.dispose
        engine.dispose = lambda *a, **k: (disposed.append(engine), dispose(*a, **k))[1]
        return engine

    monkeypatch.setattr(commands_db, "open_engine", spied)
    return argparse.Namespace(database_url=url), begins, disposed


def _orgs(args: argparse.Namespace) -> list[str]:
    engine = db.create_db_engine(args.database_url)
    try:
        with db.transaction(engine, write=False) as s:
            return list(s.scalars(select(Organisation.slug)))
    finally:
        engine.dispose()


def test_write_transaction_commits_begins_immediate_and_disposes(opened) -> None:
    args, begins, disposed = opened
    with database(args, write=True) as session:
        session.add(Organisation(slug="acme", name="Acme"))
    assert begins == ["BEGIN IMMEDIATE"] and len(disposed) == 1
    assert _orgs(args) == ["acme"]


def test_read_transaction_is_deferred(opened) -> None:
    args, begins, disposed = opened
    with database(args, write=False) as session:
        assert list(session.scalars(select(Organisation))) == []
    assert begins == ["BEGIN DEFERRED"] and len(disposed) == 1


def test_an_error_rolls_back_and_still_disposes(opened) -> None:
    args, _, disposed = opened
    with pytest.raises(ValueError, match="no such thing"), \
            database(args, write=True) as session:
        session.add(Organisation(slug="acme", name="Acme"))
        session.flush()
        raise ValueError("no such thing")
    assert len(disposed) == 1 and _orgs(args) == []


def test_opened_engine_disposes_after_an_error(opened) -> None:
    args, _, disposed = opened
    with pytest.raises(RuntimeError), opened_engine(args):
        assert disposed == []
        raise RuntimeError
    assert len(disposed) == 1
