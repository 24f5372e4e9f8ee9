"""A raise of a town's four-eyes amounts waits for a second member of staff
(backend/merchants/limits.py): the value proposed and who proposed it, per amount. Before this,
one member of staff could raise the amount and then approve a large settlement alone.

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-06 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0046"
down_revision: str | None = "0045"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("four_eyes_amount_raise", sa.Numeric(78, 0)),
    ("four_eyes_amount_raise_by", sa.Integer()),
    ("issue_four_eyes_amount_raise", sa.Numeric(78, 0)),
    ("issue_four_eyes_amount_raise_by", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("town_money_settings") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("town_money_settings") as batch:
        for name, _type in reversed(COLUMNS):
            batch.drop_column(name)
