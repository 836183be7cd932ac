"""test security: item status 'held', served time of the pending item and answers left out of
the score, assessment security settings, bank monitors with the response-time fit, item alarms,
session integrity evidence

Revision ID: 0010
Revises: 0009_f14 (feasibility checks)
Create Date: 2026-12-04 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009_f14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('pretest', 'operational', 'retired')"
NEW_STATUSES = "status IN ('pretest', 'operational', 'held', 'retired')"


def _item_statuses(condition: str) -> None:
    with op.batch_alter_table("items", recreate="auto") as batch_op:
        batch_op.drop_constraint(op.f("ck_items_status"), type_="check")
        batch_op.create_check_constraint("status", condition)


def upgrade() -> None:
    _item_statuses(NEW_STATUSES)
    with op.batch_alter_table("test_sessions") as batch_op:
        batch_op.add_column(sa.Column("item_served_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("unscored_positions", sa.JSON(), nullable=True))
    with op.batch_alter_table("assessments") as batch_op:
        batch_op.add_column(sa.Column("security", sa.JSON(), nullable=True))
    op.create_table(
        "bank_monitors",
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ran_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_responses", sa.Integer(), nullable=True),
        sa.Column("n_items", sa.Integer(), nullable=True),
        sa.Column("rt_fit", sa.JSON(), nullable=True),
        sa.Column("rt_fitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["bank_id"], ["item_banks.id"],
                                name=op.f("fk_bank_monitors_bank_id_item_banks")),
        sa.PrimaryKeyConstraint("bank_id", name=op.f("pk_bank_monitors")),
    )
    op.create_table(
        "item_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("statistic", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("n_responses", sa.Integer(), nullable=False),
        sa.Column("n_since_start", sa.Integer(), nullable=False),
        sa.Column("correct_since_start", sa.Integer(), nullable=False),
        sa.Column("expected_correct_since_start", sa.Float(), nullable=False),
        sa.Column("fast_share_before", sa.Float(), nullable=True),
        sa.Column("fast_share_since", sa.Float(), nullable=True),
        sa.Column("mean_time_residual_since", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'dismissed', 'held', 'retired')",
                           name=op.f("ck_item_alarms_status")),
        sa.ForeignKeyConstraint(["bank_id"], ["item_banks.id"],
                                name=op.f("fk_item_alarms_bank_id_item_banks")),
        sa.ForeignKeyConstraint(["decided_by_id"], ["staff_users.id"],
                                name=op.f("fk_item_alarms_decided_by_id_staff_users")),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"],
                                name=op.f("fk_item_alarms_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_alarms")),
    )
    op.create_index(op.f("ix_item_alarms_bank_id"), "item_alarms", ["bank_id"])
    op.create_index(op.f("ix_item_alarms_item_id"), "item_alarms", ["item_id"])
    op.create_table(
        "session_integrity",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_answers", sa.Integer(), nullable=False),
        sa.Column("n_timed", sa.Integer(), nullable=False),
        sa.Column("rapid", sa.Integer(), nullable=False),
        sa.Column("preknowledge_llr", sa.Float(), nullable=False),
        sa.Column("lz_star", sa.Float(), nullable=True),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["test_sessions.id"],
                                name=op.f("fk_session_integrity_session_id_test_sessions")),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_integrity")),
    )


def downgrade() -> None:
    op.drop_table("session_integrity")
    op.drop_index(op.f("ix_item_alarms_item_id"), table_name="item_alarms")
    op.drop_index(op.f("ix_item_alarms_bank_id"), table_name="item_alarms")
    op.drop_table("item_alarms")
    op.drop_table("bank_monitors")
    with op.batch_alter_table("assessments") as batch_op:
        batch_op.drop_column("security")
    with op.batch_alter_table("test_sessions") as batch_op:
        batch_op.drop_column("unscored_positions")
        batch_op.drop_column("item_served_at")
    op.execute("UPDATE items SET status = 'retired' WHERE status = 'held'")
    _item_statuses(OLD_STATUSES)
