"""dao_proposals.origin / proposer and dao_alerts

Every ProposalCreated of a town's chambers is indexed (issue 10 §1): a proposal made outside the
platform gets a row with origin 'external' and raises a dao_alerts row that town staff see; a
treasury Cancelled event (the guardian or a chamber cancelled a queued payout) does too.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dao_proposals") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(16), nullable=False, server_default="platform")
        )
        batch.add_column(sa.Column("proposer", sa.String(42), nullable=True))
    op.create_table(
        "dao_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("proposal_row_id", sa.Integer(), nullable=True),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("actor", sa.String(length=42), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seen_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_row_id"],
            ["dao_proposals.id"],
            name=op.f("fk_dao_alerts_proposal_row_id_dao_proposals"),
        ),
        sa.ForeignKeyConstraint(
            ["seen_by"], ["users.id"], name=op.f("fk_dao_alerts_seen_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_dao_alerts_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dao_alerts")),
        sa.UniqueConstraint("tx_hash", "log_index", name=op.f("uq_dao_alerts_tx_hash_log_index")),
    )
    op.create_index(op.f("ix_dao_alerts_town_id"), "dao_alerts", ["town_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dao_alerts_town_id"), table_name="dao_alerts")
    op.drop_table("dao_alerts")
    with op.batch_alter_table("dao_proposals") as batch:
        batch.drop_column("proposer")
        batch.drop_column("origin")
