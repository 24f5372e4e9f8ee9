"""Gifts of cards and tickets (issue 15 §4): a custodial holder gives a token to another person
or moves it to their own wallet; at most one gift of a token on its way (partial UNIQUE index),
one gift per form (request_key UNIQUE).

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-04 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nft_gifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.BigInteger(), nullable=False),
        sa.Column("giver_id", sa.Integer(), nullable=False),
        sa.Column("from_address", sa.String(length=42), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("request_key", sa.String(length=120), nullable=False),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'done', 'failed')", name=op.f("ck_nft_gifts_state")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_nft_gifts_collection_id_collections"),
        ),
        sa.ForeignKeyConstraint(
            ["giver_id"], ["users.id"], name=op.f("fk_nft_gifts_giver_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["users.id"], name=op.f("fk_nft_gifts_recipient_id_users")
        ),
        sa.ForeignKeyConstraint(["town_id"], ["towns.id"], name=op.f("fk_nft_gifts_town_id_towns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nft_gifts")),
        sa.UniqueConstraint("request_key", name=op.f("uq_nft_gifts_request_key")),
    )
    op.create_index(op.f("ix_nft_gifts_collection_id"), "nft_gifts", ["collection_id"])
    op.create_index(op.f("ix_nft_gifts_giver_id"), "nft_gifts", ["giver_id"])
    op.create_index(op.f("ix_nft_gifts_outbox_tx_id"), "nft_gifts", ["outbox_tx_id"])
    op.create_index(
        "uq_nft_gifts_token_in_flight",
        "nft_gifts",
        ["collection_id", "token_id"],
        unique=True,
        postgresql_where=sa.text("state = 'queued'"),
        sqlite_where=sa.text("state = 'queued'"),
    )


def downgrade() -> None:
    op.drop_table("nft_gifts")
