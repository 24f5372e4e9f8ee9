"""The audit log is append-only on SQLite too (on PostgreSQL a trigger has refused UPDATE and
DELETE since 0001): `make run` and small towns run on SQLite, and PRODUCT.md promises an
append-only log of every money action. Two triggers abort any UPDATE or DELETE of a row.

A later migration that rebuilds audit_log on SQLite (batch_alter_table copies the table) drops
these triggers with the old table: it must create them again (TRIGGERS below).

Revision ID: 0051
Revises: 0050
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0051"
down_revision: str | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = {
    "audit_log_no_update": "BEFORE UPDATE ON audit_log",
    "audit_log_no_delete": "BEFORE DELETE ON audit_log",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, when in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {when} "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
