"""Points programmes per town (issue 13 §2): `points_programmes` (what a town's staff edit in
the console: names, welcome amount, daily caps, expiry, active), `points_setting_changes` (each
change once per town and request key, with its outbox call) and `points_daily_totals` (the
counters of the daily caps). Existing towns get their preset rows the first time the console or
the API reads their programmes (backend/points/town_settings.py `ensure_seeded`).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "points_programmes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name_ja", sa.String(length=120), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("welcome_amount", sa.BigInteger(), nullable=True),
        sa.Column("cap_per_person_day", sa.BigInteger(), nullable=True),
        sa.Column("cap_per_town_day", sa.BigInteger(), nullable=True),
        sa.Column("expiry_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_points_programmes_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_programmes")),
        sa.UniqueConstraint(
            "town_id", "programme_id", name=op.f("uq_points_programmes_town_id_programme_id")
        ),
    )
    op.create_index(
        op.f("ix_points_programmes_town_id"), "points_programmes", ["town_id"], unique=False
    )
    op.create_table(
        "points_setting_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("setting", sa.String(length=32), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=True),
        sa.Column("expiry_days", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("policy", sa.String(length=16), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_points_setting_changes_actor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_points_setting_changes_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_setting_changes")),
        sa.UniqueConstraint(
            "town_id", "request_key", name=op.f("uq_points_setting_changes_town_id_request_key")
        ),
    )
    op.create_index(
        op.f("ix_points_setting_changes_outbox_tx_id"),
        "points_setting_changes",
        ["outbox_tx_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_points_setting_changes_town_id"),
        "points_setting_changes",
        ["town_id"],
        unique=False,
    )
    op.create_table(
        "points_daily_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_points_daily_totals_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_daily_totals")),
        sa.UniqueConstraint(
            "town_id",
            "programme_id",
            "day",
            "user_id",
            name=op.f("uq_points_daily_totals_town_id_programme_id_day_user_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("points_daily_totals")
    op.drop_index(op.f("ix_points_setting_changes_town_id"), table_name="points_setting_changes")
    op.drop_index(
        op.f("ix_points_setting_changes_outbox_tx_id"), table_name="points_setting_changes"
    )
    op.drop_table("points_setting_changes")
    op.drop_index(op.f("ix_points_programmes_town_id"), table_name="points_programmes")
    op.drop_table("points_programmes")
