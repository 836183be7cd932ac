"""Pooled PostgreSQL connections are pinged only after idling (item_bank.db): a connection the
server dropped while idle is replaced before a request sees it, and busy connections cost no
extra round trip. Runs against the real server when ``DATABASE_URL`` points at PostgreSQL."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from item_bank import db

URL = os.environ.get("DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not URL.startswith(("postgres://", "postgresql")),
                                reason="needs the PostgreSQL server (DATABASE_URL)")


def _kill(admin, pid: int) -> None:
    with admin.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()


def _count_pings(engine, monkeypatch) -> list[int]:
    pings = [0]
    ping = engine.dialect.do_ping

    def counted(dbapi_conn):
        pings[0] += 1
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_dropped_while_idle_is_replaced_before_use(monkeypatch) -> None:
    engine, admin = db.create_db_engine(URL, pool_size=1), db.create_db_engine(URL)
    pings = _count_pings(engine, monkeypatch)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert pings == [0]  # a new connection is not pinged
        _kill(admin, pid)
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # it has idled long enough
        with engine.connect() as conn:
            new_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert new_pid != pid and pings == [1]
    finally:
        engine.dispose()
        admin.dispose()


def test_a_busy_connection_is_not_pinged_and_a_drop_fails_one_request_only(monkeypatch
                                                                            ) -> None:
    engine, admin = db.create_db_engine(URL, pool_size=1), db.create_db_engine(URL)
    pings = _count_pings(engine, monkeypatch)
    try:
        for _ in range(3):
            with engine.connect() as conn:  # reused at once: no ping, the same server process
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert pings == [0]
        _kill(admin, pid)
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        with engine.connect() as conn:  # the pool was invalidated: the next use reconnects
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        admin.dispose()
