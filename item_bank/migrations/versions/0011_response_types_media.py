"""response types (multiple response, ordering, numeric/text entry) and item media

Revision ID: 0011
Revises: 0010 (test security)
Create Date: 2026-12-04 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("response_type", sa.String(length=16),
                                   server_default="single", nullable=False))
        batch.add_column(sa.Column("correct", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("scoring", sa.String(length=16), server_default="partial",
                                   nullable=False))
    op.execute("UPDATE items SET correct = '[]'")
    with op.batch_alter_table("items") as batch:
        batch.alter_column("correct", existing_type=sa.JSON(), nullable=False)
        batch.create_check_constraint(
            "response_type",
            "response_type IN ('single', 'multiple', 'ordering', 'numeric', 'text')")
        batch.create_check_constraint("scoring", "scoring IN ('partial', 'all_or_nothing')")
    op.create_table(
        "item_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("alt", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("storage_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_item_media_size_bytes")),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], ondelete="CASCADE",
                                name=op.f("fk_item_media_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_media")),
        sa.UniqueConstraint("item_id", "name", name=op.f("uq_item_media_item_id_name")),
    )
    op.create_index(op.f("ix_item_media_item_id"), "item_media", ["item_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_item_media_item_id"), table_name="item_media")
    op.drop_table("item_media")
    with op.batch_alter_table("items") as batch:
        batch.drop_constraint(op.f("ck_items_scoring"), type_="check")
        batch.drop_constraint(op.f("ck_items_response_type"), type_="check")
        batch.drop_column("scoring")
        batch.drop_column("correct")
        batch.drop_column("response_type")
