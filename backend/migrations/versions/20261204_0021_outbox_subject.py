"""Outbox rows name the business row that sent them (issue 12): outbox_txs.subject_kind and
outbox_txs.subject_id (e.g. "charge", 42), nullable; rows written before stay without one.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_txs") as batch:
        batch.add_column(sa.Column("subject_kind", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("subject_id", sa.Integer(), nullable=True))
        batch.create_index("ix_outbox_txs_subject", ["subject_kind", "subject_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_txs") as batch:
        batch.drop_index("ix_outbox_txs_subject")
        batch.drop_column("subject_id")
        batch.drop_column("subject_kind")
