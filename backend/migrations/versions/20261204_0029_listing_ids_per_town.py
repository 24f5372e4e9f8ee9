"""nft_listings.chain_listing_id is unique per town, not across towns

Each town has its own PrimarySale, whose listing ids start at 1: with two towns (the demo's
更別村 and 洞爺湖町) both hold a listing 1. The UNIQUE moves from (chain_listing_id) to
(town_id, chain_listing_id).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-04 18:25:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nft_listings") as batch:
        batch.drop_constraint(op.f("uq_nft_listings_chain_listing_id"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_nft_listings_town_id_chain_listing_id"), ["town_id", "chain_listing_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("nft_listings") as batch:
        batch.drop_constraint(op.f("uq_nft_listings_town_id_chain_listing_id"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_nft_listings_chain_listing_id"), ["chain_listing_id"]
        )
