"""merge indexer lean and cards per town

Revision ID: 0014
Revises: 0012, 0013
Create Date: 2026-11-23 19:07:48.765980
"""

from collections.abc import Sequence


revision: str = "0014"
down_revision: str | None = ("0012", "0013")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
