"""a session's copy of its assessment's test-security settings, taken when it starts

Revision ID: 0012
Revises: 0011 (response types and media)
Create Date: 2026-12-05 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("test_sessions") as batch_op:
        batch_op.add_column(sa.Column("security", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("test_sessions") as batch_op:
        batch_op.drop_column("security")
