"""Shared database fixtures (SQLite always; PostgreSQL too when ``DATABASE_URL`` points at it).

* ``db_backend`` — ``"sqlite"`` or ``"postgresql"``; tests using the fixtures below run once per
  available backend.
* ``db_engine`` — a migrated database shared by the whole test run (per backend). On PostgreSQL it
  lives in a uniquely named schema created for this run and dropped at the end; nothing else in
  the database is touched.
* ``db_session`` — a `Session` on ``db_engine`` inside a transaction that is rolled back after
  the test (the session's own commits become SAVEPOINT releases), so tests never see each other's
  rows.
* ``fresh_engine`` — a factory for a brand-new migrated database (SQLite file in ``tmp_path``, or
  a new PostgreSQL schema dropped afterwards), for tests that commit from several connections.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from item_bank.db import create_db_engine, normalize_url, upgrade

# Property tests are derandomized by default so that CI is reproducible; explore new examples
# with HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_PG_URL = os.environ.get("DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if _PG_URL.startswith(("postgres://", "postgresql"))
                         else [])


class _PgSchemas:
    """Creates uniquely named schemas and drops exactly those."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.admin = create_db_engine(self.url)

    def engine(self) -> tuple[Engine, str]:
        schema = f"proficio_test_{uuid.uuid4().hex[:12]}"
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        eng = create_db_engine(self.url, connect_args={"options": f"-csearch_path={schema}"})
        return eng, schema

    def drop(self, eng: Engine, schema: str) -> None:
        eng.dispose()
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def _pg_schemas() -> Iterator[_PgSchemas | None]:
    if "postgresql" not in BACKENDS:
        yield None
        return
    schemas = _PgSchemas(_PG_URL)
    yield schemas
    schemas.admin.dispose()


def _new_engine(backend: str, folder, pg: _PgSchemas | None) -> tuple[Engine, Callable[[], None]]:
    if backend == "sqlite":
        path = folder / f"proficio-{uuid.uuid4().hex[:8]}.sqlite3"
        eng = create_db_engine(f"sqlite:///{path}")
        return eng, eng.dispose
    assert pg is not None
    eng, schema = pg.engine()
    return eng, lambda: pg.drop(eng, schema)


@pytest.fixture(scope="session", params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def db_engine(db_backend: str, tmp_path_factory: pytest.TempPathFactory,
              _pg_schemas: _PgSchemas | None) -> Iterator[Engine]:
    eng, cleanup = _new_engine(db_backend, tmp_path_factory.mktemp("db"), _pg_schemas)
    upgrade(eng)
    yield eng
    cleanup()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    with db_engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint",
                          expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture
def fresh_engine(db_backend: str, tmp_path, _pg_schemas: _PgSchemas | None
                 ) -> Iterator[Callable[[bool], Engine]]:
    made: list[Callable[[], None]] = []

    def factory(migrate: bool = True) -> Engine:
        eng, cleanup = _new_engine(db_backend, tmp_path, _pg_schemas)
        made.append(cleanup)
        if migrate:
            upgrade(eng)
        return eng

    yield factory
    for cleanup in made:
        cleanup()
