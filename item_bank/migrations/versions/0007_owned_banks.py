"""owned item banks, libraries and response-pooling consent

Every bank belongs to one organisation. Today's single bank (every skill, item, calibration run
and job) moves into a bank owned by the oldest organisation (or by a new organisation
``proficio`` when the database has content but no organisation); every assessment draws from
it. When assessments of other organisations already use it, it is published as a library so
that they keep working — read-only for them from now on. No consent to pool responses is
invented: calibrations of the bank from now on use its owner's responses only, until another
organisation consents.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:45:00
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Tables whose rows belong to a bank.
OWNED = ("skills", "items", "calibration_runs", "calibration_jobs", "assessments")

_organisations = sa.table("organisations", sa.column("id", sa.Integer),
                          sa.column("slug", sa.String), sa.column("name", sa.String),
                          sa.column("created_at", sa.DateTime(timezone=True)))
_banks = sa.table("item_banks", sa.column("id", sa.Integer),
                  sa.column("organisation_id", sa.Integer), sa.column("slug", sa.String),
                  sa.column("name", sa.String), sa.column("library", sa.Boolean),
                  sa.column("library_since", sa.DateTime(timezone=True)),
                  sa.column("created_at", sa.DateTime(timezone=True)))


def _existing_bank(conn: sa.Connection) -> int | None:
    """Create the bank that today's rows move into; None for a database without content."""
    if not any(conn.scalar(sa.text(f"SELECT COUNT(*) FROM {t}")) for t in OWNED):
        return None
    now = dt.datetime.now(dt.UTC)
    owner = conn.scalar(sa.text("SELECT MIN(id) FROM organisations"))
    if owner is None:
        conn.execute(sa.insert(_organisations).values(slug="proficio", name="Proficio",
                                                      created_at=now))
        owner = conn.scalar(sa.text("SELECT id FROM organisations WHERE slug = 'proficio'"))
    shared = bool(conn.scalar(sa.text("SELECT COUNT(*) FROM assessments "
                                      "WHERE organisation_id <> :o"), {"o": owner}))
    conn.execute(sa.insert(_banks).values(
        organisation_id=owner, slug="default", name="Item bank", library=shared,
        library_since=now if shared else None, created_at=now))
    return conn.scalar(sa.text("SELECT id FROM item_banks WHERE organisation_id = :o"),
                       {"o": owner})


def upgrade() -> None:
    op.create_table(
        "item_banks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("library", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("library_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("copied_from_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["copied_from_id"], ["item_banks.id"],
                                name=op.f("fk_item_banks_copied_from_id_item_banks")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_item_banks_organisation_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_banks")),
        sa.UniqueConstraint("organisation_id", "slug",
                            name=op.f("uq_item_banks_organisation_id_slug")),
    )
    with op.batch_alter_table("item_banks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_banks_organisation_id"), ["organisation_id"],
                              unique=False)
    op.create_table(
        "response_pooling_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("bank_id", sa.Integer(), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["bank_id"], ["item_banks.id"],
                                name=op.f("fk_response_pooling_consents_bank_id_item_banks")),
        sa.ForeignKeyConstraint(
            ["granted_by_id"], ["staff_users.id"],
            name=op.f("fk_response_pooling_consents_granted_by_id_staff_users")),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"],
            name=op.f("fk_response_pooling_consents_organisation_id_organisations")),
        sa.ForeignKeyConstraint(
            ["revoked_by_id"], ["staff_users.id"],
            name=op.f("fk_response_pooling_consents_revoked_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_pooling_consents")),
    )
    with op.batch_alter_table("response_pooling_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_response_pooling_consents_bank_id"), ["bank_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_response_pooling_consents_organisation_id"),
                              ["organisation_id"], unique=False)

    conn = op.get_bind()
    bank_id = _existing_bank(conn)
    for table in OWNED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("bank_id", sa.Integer(), nullable=True))
        if bank_id is not None:
            conn.execute(sa.text(f"UPDATE {table} SET bank_id = :b"), {"b": bank_id})
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("bank_id", existing_type=sa.Integer(), nullable=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_bank_id"), ["bank_id"], unique=False)
            batch_op.create_foreign_key(batch_op.f(f"fk_{table}_bank_id_item_banks"),
                                        "item_banks", ["bank_id"], ["id"])
            if table == "skills":
                batch_op.drop_constraint(batch_op.f("uq_skills_slug"), type_="unique")
                batch_op.create_unique_constraint(batch_op.f("uq_skills_bank_id_slug"),
                                                  ["bank_id", "slug"])
            if table == "items":
                batch_op.drop_constraint(batch_op.f("uq_items_external_id"), type_="unique")
                batch_op.create_unique_constraint(batch_op.f("uq_items_bank_id_external_id"),
                                                  ["bank_id", "external_id"])


def downgrade() -> None:
    if op.get_bind().scalar(sa.text("SELECT COUNT(*) FROM item_banks")) > 1:
        raise RuntimeError("cannot downgrade: the database holds more than one item bank")
    for table in reversed(OWNED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "items":
                batch_op.drop_constraint(batch_op.f("uq_items_bank_id_external_id"),
                                         type_="unique")
                batch_op.create_unique_constraint(batch_op.f("uq_items_external_id"),
                                                  ["external_id"])
            if table == "skills":
                batch_op.drop_constraint(batch_op.f("uq_skills_bank_id_slug"), type_="unique")
                batch_op.create_unique_constraint(batch_op.f("uq_skills_slug"), ["slug"])
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_bank_id_item_banks"),
                                     type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{table}_bank_id"))
            batch_op.drop_column("bank_id")
    with op.batch_alter_table("response_pooling_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_response_pooling_consents_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_response_pooling_consents_bank_id"))
    op.drop_table("response_pooling_consents")
    with op.batch_alter_table("item_banks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_banks_organisation_id"))
    op.drop_table("item_banks")
