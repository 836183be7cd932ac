"""PostgreSQL: a session's stored engine state compressed with lz4

Every answer rewrites the session's engine state (a JSON text of several kilobytes, stored
out of line by TOAST); PostgreSQL compressed it with pglz, whose cost is a large part of the
database's work per answer. lz4 (PostgreSQL 14 and later, when the server is built with it)
compresses the same text several times faster. Values written before keep their compression
until they are next rewritten. A server without lz4 keeps pglz (the change is skipped with a
notice); other databases are unaffected.

Revision ID: 0014
Revises: 0013 (a session's copy of its assessment's time limit)
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _compression(method: str) -> None:
    bind = op.get_bind()
    version = bind.dialect.server_version_info or ()
    if bind.dialect.name != "postgresql" or tuple(version[:1]) < (14,):
        return
    # dynamic SQL inside a block: a server built without lz4 raises, and the block turns that
    # into a notice instead of failing the migration
    op.execute(f"""
        DO $$ BEGIN
            EXECUTE 'ALTER TABLE test_sessions ALTER COLUMN engine_state SET COMPRESSION {method}';
        EXCEPTION WHEN others THEN
            RAISE NOTICE 'engine_state compression left unchanged: %', SQLERRM;
        END $$""")


def upgrade() -> None:
    _compression("lz4")


def downgrade() -> None:
    _compression("pglz")
