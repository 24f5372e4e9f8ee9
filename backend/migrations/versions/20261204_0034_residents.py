"""Residents (issue 15 §3): one row per (town, person) with the hash of their identity (UNIQUE
per town: one pass per person), how they were verified, and their ResidentPass (ADR 0021).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-04 21:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "residents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("identity_hash", sa.String(length=66), nullable=False),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("verified_by", sa.Integer(), nullable=True),
        sa.Column("oidc_issuer", sa.String(length=300), nullable=True),
        sa.Column("verified_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("token_id", sa.BigInteger(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("issue_tx_id", sa.Integer(), nullable=True),
        sa.Column("revoke_tx_id", sa.Integer(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["users.id"], name=op.f("fk_residents_revoked_by_users")
        ),
        sa.ForeignKeyConstraint(["town_id"], ["towns.id"], name=op.f("fk_residents_town_id_towns")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_residents_user_id_users")),
        sa.ForeignKeyConstraint(
            ["verified_by"], ["users.id"], name=op.f("fk_residents_verified_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint(
            "town_id", "identity_hash", name=op.f("uq_residents_town_id_identity_hash")
        ),
        sa.UniqueConstraint("town_id", "user_id", name=op.f("uq_residents_town_id_user_id")),
    )
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_residents_town_id"), ["town_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_residents_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residents_user_id"))
        batch_op.drop_index(batch_op.f("ix_residents_town_id"))

    op.drop_table("residents")
