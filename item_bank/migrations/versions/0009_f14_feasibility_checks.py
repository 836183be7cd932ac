"""feasibility checks: an assessment design simulated as a background job before it is saved

Revision ID: 0009_f14
Revises: 0008 (accountable results)
Create Date: 2026-12-05 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_f14"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feasibility_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("blueprint", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'saved')",
                           name=op.f("ck_feasibility_checks_status")),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessments.id"],
                                name=op.f("fk_feasibility_checks_assessment_id_assessments")),
        sa.ForeignKeyConstraint(["bank_id"], ["item_banks.id"],
                                name=op.f("fk_feasibility_checks_bank_id_item_banks")),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff_users.id"],
                                name=op.f("fk_feasibility_checks_created_by_id_staff_users")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_feasibility_checks_organisation_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feasibility_checks")),
    )
    op.create_index(op.f("ix_feasibility_checks_organisation_id"), "feasibility_checks",
                    ["organisation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feasibility_checks_organisation_id"), table_name="feasibility_checks")
    op.drop_table("feasibility_checks")
