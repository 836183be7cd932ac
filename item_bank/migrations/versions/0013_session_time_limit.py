"""a session's copy of its assessment's time limit, taken when it starts

Revision ID: 0013
Revises: 0012 (a session's copy of its security settings)
Create Date: 2026-12-05 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("test_sessions") as batch_op:
        batch_op.add_column(sa.Column("time_limit_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("test_sessions") as batch_op:
        batch_op.drop_column("time_limit_minutes")
