"""chain_blocks.block_time: the header's timestamp, when the indexer read the header

Events that reach a domain handler carry their block's time (ChainEvent.block_time), read by
the indexer with the block headers; the blocks keep it, so that the events rebuilt for a
reorg's revert carry it too. Nullable: blocks stored before, and blocks whose header was not
read (the logs named their hash), have none.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chain_blocks") as batch:
        batch.add_column(sa.Column("block_time", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain_blocks") as batch:
        batch.drop_column("block_time")
