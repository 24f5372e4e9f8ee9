"""Claims (issue 14 §3, ADR 0017): claim wallets reserved for an e-mail address with no
verified account (one waiting per address: a partial UNIQUE index), the claims held in them
(one per issuance row) and the transfers that move claimed points to their owner.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-04 21:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db


revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claim_wallets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_data_key", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claimed_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["users.id"], name=op.f("fk_claim_wallets_claimed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_wallets")),
        sa.UniqueConstraint("address", name=op.f("uq_claim_wallets_address")),
    )
    op.create_index(
        op.f("ix_claim_wallets_claimed_by"), "claim_wallets", ["claimed_by"], unique=False
    )
    op.create_index(op.f("ix_claim_wallets_email"), "claim_wallets", ["email"], unique=False)
    op.create_index(
        op.f("ix_claim_wallets_master_key_id"), "claim_wallets", ["master_key_id"], unique=False
    )
    op.create_index(
        "uq_claim_wallets_waiting_email",
        "claim_wallets",
        ["email"],
        unique=True,
        sqlite_where=sa.text("claimed_by IS NULL"),
        postgresql_where=sa.text("claimed_by IS NULL"),
    )
    op.create_table(
        "claim_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'confirmed', 'failed')",
            name=op.f("ck_claim_transfers_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_claim_transfers_amount_positive")),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_claim_transfers_town_id_towns")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_claim_transfers_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"],
            ["claim_wallets.id"],
            name=op.f("fk_claim_transfers_wallet_id_claim_wallets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_transfers")),
        sa.UniqueConstraint(
            "wallet_id",
            "town_id",
            "number",
            name=op.f("uq_claim_transfers_wallet_id_town_id_number"),
        ),
    )
    op.create_index(
        op.f("ix_claim_transfers_outbox_tx_id"), "claim_transfers", ["outbox_tx_id"], unique=False
    )
    op.create_index(
        op.f("ix_claim_transfers_user_id"), "claim_transfers", ["user_id"], unique=False
    )
    op.create_index(
        op.f("ix_claim_transfers_wallet_id"), "claim_transfers", ["wallet_id"], unique=False
    )
    op.create_table(
        "points_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.Integer(), nullable=True),
        sa.Column("taken_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("moved_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('held', 'taken', 'moved')", name=op.f("ck_points_claims_state")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_points_claims_amount_positive")),
        sa.ForeignKeyConstraint(
            ["taken_by"], ["users.id"], name=op.f("fk_points_claims_taken_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_points_claims_town_id_towns")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"],
            ["claim_wallets.id"],
            name=op.f("fk_points_claims_wallet_id_claim_wallets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_claims")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_points_claims_source_source_id")),
    )
    op.create_index(
        "ix_points_claims_town_state", "points_claims", ["town_id", "state"], unique=False
    )
    op.create_index(
        "ix_points_claims_wallet_state", "points_claims", ["wallet_id", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_points_claims_wallet_state", table_name="points_claims")
    op.drop_index("ix_points_claims_town_state", table_name="points_claims")
    op.drop_table("points_claims")
    op.drop_index(op.f("ix_claim_transfers_wallet_id"), table_name="claim_transfers")
    op.drop_index(op.f("ix_claim_transfers_user_id"), table_name="claim_transfers")
    op.drop_index(op.f("ix_claim_transfers_outbox_tx_id"), table_name="claim_transfers")
    op.drop_table("claim_transfers")
    op.drop_index(
        "uq_claim_wallets_waiting_email",
        table_name="claim_wallets",
        sqlite_where=sa.text("claimed_by IS NULL"),
        postgresql_where=sa.text("claimed_by IS NULL"),
    )
    op.drop_index(op.f("ix_claim_wallets_master_key_id"), table_name="claim_wallets")
    op.drop_index(op.f("ix_claim_wallets_email"), table_name="claim_wallets")
    op.drop_index(op.f("ix_claim_wallets_claimed_by"), table_name="claim_wallets")
    op.drop_table("claim_wallets")
