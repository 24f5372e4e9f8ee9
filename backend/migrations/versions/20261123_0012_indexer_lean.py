"""indexer lean: chain_events keeps only the indexes a query needs

ix_chain_events_chain_id_contract_address (every row) is replaced by a partial index on the
ProgrammeSet events that the points handler looks up. UNIQUE (chain_id, tx_hash, log_index) and
the (chain_id, block_number) index for the reorg rollback stay.
See docs/adr/0004-indexer-reorgs.md and docs/benchmarks-indexer.md.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 18:57:26.947613
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAMME_SET = "event_name = 'ProgrammeSet'"


def upgrade() -> None:
    with op.batch_alter_table("chain_events") as batch:
        batch.drop_index("ix_chain_events_chain_id_contract_address")
        batch.create_index(
            "ix_chain_events_programme_set",
            ["chain_id", "contract_address", "block_number"],
            unique=False,
            postgresql_where=sa.text(PROGRAMME_SET),
            sqlite_where=sa.text(PROGRAMME_SET),
        )


def downgrade() -> None:
    with op.batch_alter_table("chain_events") as batch:
        batch.drop_index("ix_chain_events_programme_set")
        batch.create_index(
            "ix_chain_events_chain_id_contract_address",
            ["chain_id", "contract_address"],
            unique=False,
        )
