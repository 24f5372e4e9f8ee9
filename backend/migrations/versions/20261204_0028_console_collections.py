"""Console collections (issue 13 §2): what a collection is created with from the staff console
(symbol, royalty, soulbound, votes, an uploaded image, its set-up status and request key), the
request key and allowlist flag of a listing, the last setPerk of a perk, and the allowlist with
its signed vouchers (`nft_allowlist`).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as b:
        b.add_column(sa.Column("symbol", sa.String(length=12), server_default="", nullable=False))
        b.add_column(sa.Column("royalty_bps", sa.Integer(), server_default="0", nullable=False))
        b.add_column(
            sa.Column("soulbound", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        b.add_column(sa.Column("votes", sa.Boolean(), server_default=sa.false(), nullable=False))
        b.add_column(sa.Column("image_data", sa.LargeBinary(), nullable=True))
        b.add_column(sa.Column("image_type", sa.String(length=20), nullable=True))
        b.add_column(
            sa.Column("status", sa.String(length=16), server_default="live", nullable=False)
        )
        b.add_column(sa.Column("create_tx_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("idempotency_key", sa.String(length=120), nullable=True))
        b.add_column(sa.Column("created_by_id", sa.Integer(), nullable=True))
        b.create_index(b.f("ix_collections_create_tx_id"), ["create_tx_id"], unique=False)
        b.create_unique_constraint(b.f("uq_collections_idempotency_key"), ["idempotency_key"])
        b.create_foreign_key(
            b.f("fk_collections_created_by_id_users"), "users", ["created_by_id"], ["id"]
        )
    with op.batch_alter_table("nft_perks") as b:
        b.add_column(sa.Column("outbox_tx_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("nft_listings") as b:
        b.add_column(
            sa.Column("allowlist_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        b.add_column(sa.Column("idempotency_key", sa.String(length=120), nullable=True))
        b.create_unique_constraint(b.f("uq_nft_listings_idempotency_key"), ["idempotency_key"])
    op.create_table(
        "nft_allowlist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("max_quantity", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=132), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["nft_listings.id"],
            name=op.f("fk_nft_allowlist_listing_id_nft_listings"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nft_allowlist")),
        sa.UniqueConstraint(
            "listing_id", "address", name=op.f("uq_nft_allowlist_listing_id_address")
        ),
    )
    op.create_index(op.f("ix_nft_allowlist_listing_id"), "nft_allowlist", ["listing_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_nft_allowlist_listing_id"), table_name="nft_allowlist")
    op.drop_table("nft_allowlist")
    with op.batch_alter_table("nft_listings") as b:
        b.drop_constraint(b.f("uq_nft_listings_idempotency_key"), type_="unique")
        b.drop_column("idempotency_key")
        b.drop_column("allowlist_only")
    with op.batch_alter_table("nft_perks") as b:
        b.drop_column("outbox_tx_id")
    with op.batch_alter_table("collections") as b:
        b.drop_constraint(b.f("fk_collections_created_by_id_users"), type_="foreignkey")
        b.drop_constraint(b.f("uq_collections_idempotency_key"), type_="unique")
        b.drop_index(b.f("ix_collections_create_tx_id"))
        for name in (
            "created_by_id",
            "idempotency_key",
            "create_tx_id",
            "status",
            "image_type",
            "image_data",
            "votes",
            "soulbound",
            "royalty_bps",
            "symbol",
        ):
            b.drop_column(name)
