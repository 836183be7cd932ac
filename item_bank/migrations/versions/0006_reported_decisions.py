"""engine decisions kept with skill results, overall (composite) results, assessment feasibility

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("skill_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("decision_rule", sa.String(length=16), nullable=True))
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feasibility", sa.JSON(), nullable=True))
    op.create_table(
        "overall_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("theta", sa.Float(), nullable=False),
        sa.Column("se", sa.Float(), nullable=False),
        sa.Column("weights", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["test_sessions.id"],
                                name=op.f("fk_overall_results_session_id_test_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_overall_results")),
        sa.UniqueConstraint("session_id", name=op.f("uq_overall_results_session_id")),
    )


def downgrade() -> None:
    op.drop_table("overall_results")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_column("feasibility")
    with op.batch_alter_table("skill_results", schema=None) as batch_op:
        batch_op.drop_column("decision_rule")
        batch_op.drop_column("decision")
