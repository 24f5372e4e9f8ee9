"""chain_events keyed by (chain_id, block_number, log_index)

The surrogate `id` (its sequence and primary-key index) and the (chain_id, block_number) index
are replaced by one primary key on (chain_id, block_number, log_index): it names one log of the
chain, keys arrive in order while indexing, and it serves the reorg rollback and chain-order
reads. UNIQUE (chain_id, tx_hash, log_index), the issue's "stored once", stays.
Nothing referenced chain_events.id. See docs/benchmarks-indexer.md (COPY cost per index).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chain_events", recreate="auto") as batch:
        batch.drop_index("ix_chain_events_chain_id_block_number")
        batch.drop_constraint("pk_chain_events", type_="primary")
        batch.drop_column("id")
        batch.create_primary_key("pk_chain_events", ["chain_id", "block_number", "log_index"])


def downgrade() -> None:
    # The surrogate key comes back numbered in chain order.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_chain_events", "chain_events", type_="primary")
        op.execute("CREATE SEQUENCE chain_events_id_seq OWNED BY NONE")
        op.execute(
            "ALTER TABLE chain_events ADD COLUMN id BIGINT "
            "NOT NULL DEFAULT nextval('chain_events_id_seq')"
        )
        op.execute("ALTER SEQUENCE chain_events_id_seq OWNED BY chain_events.id")
        op.create_primary_key("pk_chain_events", "chain_events", ["id"])
    else:
        with op.batch_alter_table("chain_events", recreate="always") as batch:
            batch.drop_constraint("pk_chain_events", type_="primary")
            batch.add_column(sa.Column("id", sa.Integer(), nullable=True))
        op.execute("UPDATE chain_events SET id = rowid")
        with op.batch_alter_table("chain_events", recreate="always") as batch:
            batch.alter_column("id", existing_type=sa.Integer(), nullable=False)
            batch.create_primary_key("pk_chain_events", ["id"])
    op.create_index(
        "ix_chain_events_chain_id_block_number",
        "chain_events",
        ["chain_id", "block_number"],
        unique=False,
    )
