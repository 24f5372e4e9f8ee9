"""Points grants (issue 12 §4): `points_welcome_grants` becomes `points_grants`, the grants of
every programme kind the platform issues by itself (backend/points/programmes.py), with a
`grant_key` in the UNIQUE constraint: (user, town, programme, grant key). Welcome grants keep the
key "", so there is still at most one per user, town and programme. Rows move with their ids.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db


revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id, user_id, town_id, programme_id, amount, address, outbox_tx_id, status, created_at, "
    "confirmed_at"
)


def _create(name: str, *, with_key: bool) -> None:
    key = [sa.Column("grant_key", sa.String(length=64), server_default="", nullable=False)]
    unique = ["user_id", "town_id", "programme_id"] + (["grant_key"] if with_key else [])
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        *(key if with_key else []),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["town_id"], ["towns.id"], name=op.f(f"fk_{name}_town_id_towns")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{name}_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint(*unique, name=op.f(f"uq_{name}_{'_'.join(unique)}")),
    )
    op.create_index(op.f(f"ix_{name}_outbox_tx_id"), name, ["outbox_tx_id"], unique=False)
    op.create_index(op.f(f"ix_{name}_user_id"), name, ["user_id"], unique=False)


def _move(old: str, new: str) -> None:
    op.execute(f"INSERT INTO {new} ({COLUMNS}) SELECT {COLUMNS} FROM {old}")  # noqa: S608
    if op.get_bind().dialect.name == "postgresql":  # the copied ids stay ahead of the sequence
        op.execute(
            f"SELECT setval(pg_get_serial_sequence('{new}', 'id'), "  # noqa: S608
            f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {new}"
        )
    op.drop_index(op.f(f"ix_{old}_user_id"), table_name=old)
    op.drop_index(op.f(f"ix_{old}_outbox_tx_id"), table_name=old)
    op.drop_table(old)


def upgrade() -> None:
    _create("points_grants", with_key=True)
    _move("points_welcome_grants", "points_grants")


def downgrade() -> None:
    # Only grants with the key "" fit the old table (one per user, town and programme).
    _create("points_welcome_grants", with_key=False)
    op.execute(
        f"INSERT INTO points_welcome_grants ({COLUMNS}) "  # noqa: S608
        f"SELECT {COLUMNS} FROM points_grants WHERE grant_key = ''"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('points_welcome_grants', 'id'), "
            "COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM points_welcome_grants"
        )
    op.drop_index(op.f("ix_points_grants_user_id"), table_name="points_grants")
    op.drop_index(op.f("ix_points_grants_outbox_tx_id"), table_name="points_grants")
    op.drop_table("points_grants")
