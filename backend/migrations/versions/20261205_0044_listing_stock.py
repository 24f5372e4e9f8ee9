"""A listing's supply held by orders (issue 16 §3, backend/shop/supply.py): one row per
listing, `reserved` taken by a guarded UPDATE per new order and given back when an order fails,
is declined or refunded. Filled from the orders that hold supply now.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-05 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0044"
down_revision: str | None = "0043"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nft_listing_stock",
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["nft_listings.id"],
            name=op.f("fk_nft_listing_stock_listing_id_nft_listings"),
        ),
        sa.PrimaryKeyConstraint("listing_id", name=op.f("pk_nft_listing_stock")),
    )
    op.execute(
        "INSERT INTO nft_listing_stock (listing_id, reserved)"
        " SELECT l.id, (SELECT COALESCE(SUM(o.quantity), 0) FROM payment_orders o"
        "  WHERE o.listing_id = l.id"
        "  AND o.status IN ('pending_payment', 'processing', 'completed'))"
        " FROM nft_listings l"
    )


def downgrade() -> None:
    op.drop_table("nft_listing_stock")
