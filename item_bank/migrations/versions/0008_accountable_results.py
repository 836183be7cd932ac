"""accountable results: organisation privacy settings, result reviews, candidate erasures

Revision ID: 0008
Revises: 0007 (owned banks)
Create Date: 2026-12-04 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organisation_privacy",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("explain_to_candidates", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("retention_days IS NULL OR retention_days BETWEEN 1 AND 3650",
                           name=op.f("ck_organisation_privacy_retention_days")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_organisation_privacy_organisation_id_organisations")),
        sa.ForeignKeyConstraint(["updated_by_id"], ["staff_users.id"],
                                name=op.f("fk_organisation_privacy_updated_by_id_staff_users")),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_organisation_privacy")),
    )
    op.create_table(
        "result_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('reviewed', 'set_aside')",
                           name=op.f("ck_result_reviews_status")),
        sa.ForeignKeyConstraint(["reviewed_by_id"], ["staff_users.id"],
                                name=op.f("fk_result_reviews_reviewed_by_id_staff_users")),
        sa.ForeignKeyConstraint(["session_id"], ["test_sessions.id"],
                                name=op.f("fk_result_reviews_session_id_test_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_reviews")),
    )
    op.create_index(op.f("ix_result_reviews_session_id"), "result_reviews", ["session_id"])
    op.create_table(
        "candidate_erasures",
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("erased_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("reason IN ('request', 'retention')",
                           name=op.f("ck_candidate_erasures_reason")),
        sa.ForeignKeyConstraint(["candidate_id"], ["candidates.id"],
                                name=op.f("fk_candidate_erasures_candidate_id_candidates")),
        sa.ForeignKeyConstraint(["erased_by_id"], ["staff_users.id"],
                                name=op.f("fk_candidate_erasures_erased_by_id_staff_users")),
        sa.PrimaryKeyConstraint("candidate_id", name=op.f("pk_candidate_erasures")),
    )


def downgrade() -> None:
    op.drop_table("candidate_erasures")
    op.drop_index(op.f("ix_result_reviews_session_id"), table_name="result_reviews")
    op.drop_table("result_reviews")
    op.drop_table("organisation_privacy")
