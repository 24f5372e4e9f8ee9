"""dao proposals and votes

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-23 18:22:24.099405
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db


revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dao_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("chamber", sa.String(length=16), nullable=False),
        sa.Column("governor_address", sa.String(length=42), nullable=False),
        sa.Column("proposal_id", sa.String(length=80), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("title_ja", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("body_ja", sa.Text(), nullable=False),
        sa.Column("body_en", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("calldatas", sa.JSON(), nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=False),
        sa.Column("recipient", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("treasury_address", sa.String(length=42), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("propose_tx_id", sa.Integer(), nullable=True),
        sa.Column("queue_tx_id", sa.Integer(), nullable=True),
        sa.Column("execute_tx_id", sa.Integer(), nullable=True),
        sa.Column("created_block", sa.Integer(), nullable=True),
        sa.Column("created_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("snapshot_block", sa.Integer(), nullable=True),
        sa.Column("deadline_block", sa.Integer(), nullable=True),
        sa.Column("queued_eta", sa.BigInteger(), nullable=True),
        sa.Column("queued_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("executed_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("executed_block", sa.Integer(), nullable=True),
        sa.Column("canceled", sa.Boolean(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_dao_proposals_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_dao_proposals_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dao_proposals")),
        sa.UniqueConstraint(
            "governor_address",
            "proposal_id",
            name=op.f("uq_dao_proposals_governor_address_proposal_id"),
        ),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_dao_proposals_idempotency_key")),
    )
    op.create_index(op.f("ix_dao_proposals_town_id"), "dao_proposals", ["town_id"], unique=False)
    op.create_table(
        "dao_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_row_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(length=42), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("support", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.Integer(), nullable=True),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.Integer(), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_row_id"],
            ["dao_proposals.id"],
            name=op.f("fk_dao_votes_proposal_row_id_dao_proposals"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_dao_votes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dao_votes")),
        sa.UniqueConstraint(
            "proposal_row_id", "voter", name=op.f("uq_dao_votes_proposal_row_id_voter")
        ),
    )
    op.create_index(
        op.f("ix_dao_votes_proposal_row_id"), "dao_votes", ["proposal_row_id"], unique=False
    )
    op.create_index(op.f("ix_dao_votes_user_id"), "dao_votes", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dao_votes_user_id"), table_name="dao_votes")
    op.drop_index(op.f("ix_dao_votes_proposal_row_id"), table_name="dao_votes")
    op.drop_table("dao_votes")
    op.drop_index(op.f("ix_dao_proposals_town_id"), table_name="dao_proposals")
    op.drop_table("dao_proposals")
