"""partnerships.term: a partnership can be started again after it ended

The pair of towns keeps its one row (UNIQUE); `term` counts the times it was started, and keys
each term's setPartner calls in the outbox apart (the first term keeps its keys).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-04 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partnerships") as batch:
        batch.add_column(sa.Column("term", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("partnerships") as batch:
        batch.drop_column("term")
