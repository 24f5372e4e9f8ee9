"""merge accounts, outbox and indexer

Revision ID: 0005
Revises: 0002, 0003, 0004
Create Date: 2026-11-23 18:16:18.815578
"""

from collections.abc import Sequence


revision: str = "0005"
down_revision: str | None = ("0002", "0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
