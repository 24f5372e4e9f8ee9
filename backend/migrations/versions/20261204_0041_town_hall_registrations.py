"""Residents registered at the town hall without an e-mail (issue 15 §1): the staff member, the
ID they saw and the request key that makes a double submit register one person.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0041"
down_revision: str | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "town_hall_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("name_kana", sa.String(length=80), nullable=False),
        sa.Column("id_seen", sa.Boolean(), nullable=False),
        sa.Column("id_kind", sa.String(length=20), nullable=False),
        sa.Column("registered_by", sa.Integer(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id_seen", name=op.f("ck_town_hall_registrations_id_seen")),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_town_hall_registrations_town_id_towns")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_town_hall_registrations_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["registered_by"],
            ["users.id"],
            name=op.f("fk_town_hall_registrations_registered_by_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_town_hall_registrations")),
        sa.UniqueConstraint(
            "town_id", "request_key", name=op.f("uq_town_hall_registrations_town_id_request_key")
        ),
        sa.UniqueConstraint("user_id", name=op.f("uq_town_hall_registrations_user_id")),
    )
    op.create_index(
        op.f("ix_town_hall_registrations_town_id"),
        "town_hall_registrations",
        ["town_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_town_hall_registrations_town_id"), table_name="town_hall_registrations")
    op.drop_table("town_hall_registrations")
