"""Events that grant points (issue 14 §4): events and their check-ins

An event of a town (names and place in ja/en, start and end, the points for attending and the
programme they come from, the QR's generation) and one check-in per person per event (UNIQUE:
points are given once).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-04 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.core.db import UTCDateTime

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("name_ja", sa.String(length=120), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("place_ja", sa.String(length=200), nullable=False),
        sa.Column("place_en", sa.String(length=200), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("qr_generation", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("cancelled_by", sa.Integer(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('scheduled', 'cancelled')", name=op.f("ck_events_status")),
        sa.CheckConstraint("points > 0", name=op.f("ck_events_points_positive")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_events_ends_after_start")),
        sa.ForeignKeyConstraint(["town_id"], ["towns.id"], name=op.f("fk_events_town_id_towns")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_events_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("town_id", "request_key", name=op.f("uq_events_town_id_request_key")),
    )
    op.create_index("ix_events_town_starts", "events", ["town_id", "starts_at"])
    op.create_table(
        "event_check_ins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=True),
        sa.Column("points_grant_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("method IN ('self', 'staff')", name=op.f("ck_event_check_ins_method")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_check_ins_event_id_events")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_event_check_ins_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["users.id"], name=op.f("fk_event_check_ins_staff_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_check_ins")),
        sa.UniqueConstraint(
            "event_id", "user_id", name=op.f("uq_event_check_ins_event_id_user_id")
        ),
    )
    op.create_index(
        op.f("ix_event_check_ins_event_id"), "event_check_ins", ["event_id"], unique=False
    )
    op.create_index(
        op.f("ix_event_check_ins_user_id"), "event_check_ins", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_event_check_ins_user_id"), table_name="event_check_ins")
    op.drop_index(op.f("ix_event_check_ins_event_id"), table_name="event_check_ins")
    op.drop_table("event_check_ins")
    op.drop_index("ix_events_town_starts", table_name="events")
    op.drop_table("events")
