"""cards per town: a resident holds one printed card per town, not one in all

UNIQUE (user_id) becomes UNIQUE (user_id, town_id): a card issued by another town no longer
overwrites the resident's card (it pays only that town's shops). Its index leads with user_id,
so reads by user stay indexed.

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-23 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resident_cards") as batch:
        batch.drop_constraint("uq_resident_cards_user_id", type_="unique")
        batch.create_unique_constraint("uq_resident_cards_user_id_town_id", ["user_id", "town_id"])


def downgrade() -> None:
    # One card per user again: keep each resident's newest card, the others stop working.
    op.execute(
        sa.text(
            "DELETE FROM resident_cards WHERE id NOT IN"
            " (SELECT MAX(id) FROM resident_cards GROUP BY user_id)"
        )
    )
    with op.batch_alter_table("resident_cards") as batch:
        batch.drop_constraint("uq_resident_cards_user_id_town_id", type_="unique")
        batch.create_unique_constraint("uq_resident_cards_user_id", ["user_id"])
