"""Alembic environment for Proficio's item bank: one set of migrations for SQLite and PostgreSQL.

`item_bank.db.alembic_config` passes an existing engine in ``config.attributes["engine"]``
(so PRAGMAs and a PostgreSQL ``search_path`` set on the engine apply); otherwise the URL is used.
SQLite gets batch mode so that ALTERs work through table copies, with foreign keys switched off
for the copy and the whole database checked (``PRAGMA foreign_key_check``) before commit
(Alembic documentation, "Running 'Batch' Migrations for SQLite and Other Databases").
"""

from __future__ import annotations

from alembic import context

from item_bank.db import create_db_engine
from item_bank.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    owned = engine is None
    if engine is None:
        engine = create_db_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            raw = connection.connection.driver_connection
            if raw is None:  # only an invalidated or closed connection has none
                raise RuntimeError("the migration connection has no driver connection")
            if sqlite:
                # Batch mode rebuilds a table by copy, DROP and rename; with foreign keys on,
                # dropping a referenced table fails. SQLite ignores this PRAGMA inside a
                # transaction, so it goes straight to the driver (autocommit) before one
                # begins; the whole database is checked before commit and the setting restored.
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                context.configure(connection=connection, target_metadata=target_metadata,
                                  render_as_batch=sqlite, compare_type=True)
                with context.begin_transaction():
                    context.run_migrations()
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"migration left rows that break foreign keys: "
                                               f"{broken[:5]}")
                connection.commit()
            finally:
                if sqlite:
                    connection.rollback()
                    raw.execute("PRAGMA foreign_keys=ON")
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
