"""Alembic environment for Proficio's item bank: one set of migrations for SQLite and PostgreSQL.

`item_bank.db.alembic_config` passes an existing engine in ``config.attributes["engine"]``
(so PRAGMAs and a PostgreSQL ``search_path`` set on the engine apply); otherwise the URL is used.
SQLite gets batch mode so that ALTERs work through table copies.
"""

from __future__ import annotations

from alembic import context

from item_bank.db import make_engine
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
    if owned:
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
