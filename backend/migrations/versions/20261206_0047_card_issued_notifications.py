"""Notifications of a new kind, card_issued: a printed payment card issued or replaced in the
person's name by town staff (backend/merchants/card_issue.py, town_hall.py). The kind CHECKs of
notifications and notification_preferences take it.

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0047"
down_revision: str | None = "0046"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "kind IN ('charge_paid', 'points_arrived', 'ticket_used', 'vote_opened')"
AFTER = "kind IN ('charge_paid', 'points_arrived', 'ticket_used', 'vote_opened', 'card_issued')"
TABLES = ("notifications", "notification_preferences")


def _kinds(check: str) -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_kind"), type_="check")
            batch.create_check_constraint(op.f(f"ck_{table}_kind"), sa.text(check))


def upgrade() -> None:
    _kinds(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'card_issued'")
    op.execute("DELETE FROM notification_preferences WHERE kind = 'card_issued'")
    _kinds(BEFORE)
