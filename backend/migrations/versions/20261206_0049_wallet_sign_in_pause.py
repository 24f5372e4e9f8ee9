"""A password reset pauses the account's wallet sign-in (docs/adr/0027): addresses get
sign_in_paused_at. The address stays the account's; only signing in with it waits until the
owner confirms it again with the new password.

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0049"
down_revision: str | None = "0048"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sign_in_paused_at", backend.core.db.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    # Paused wallets sign in again: the reset's pause is forgotten with the column.
    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.drop_column("sign_in_paused_at")
