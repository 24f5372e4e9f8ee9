"""Notifications (issue 15 §6): a person's notifications, in the app and by mail, one per fact
and person (UNIQUE key, user_id), and their switches per kind and channel (no row: on).

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-05 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0043"
down_revision: str | None = "0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "kind IN ('charge_paid', 'points_arrived', 'ticket_used', 'vote_opened')"
STATES = (
    "email_state IN ('pending', 'sending', 'sent', 'failed', 'off', 'no_address', 'stale',"
    " 'withdrawn')"
)


def upgrade() -> None:
    op.create_table(
        "notification_preferences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "channel IN ('in_app', 'email')", name=op.f("ck_notification_preferences_channel")
        ),
        sa.CheckConstraint(KINDS, name=op.f("ck_notification_preferences_kind")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_preferences")),
        sa.UniqueConstraint(
            "user_id",
            "kind",
            "channel",
            name=op.f("uq_notification_preferences_user_id_kind_channel"),
        ),
    )
    op.create_index(
        op.f("ix_notification_preferences_user_id"),
        "notification_preferences",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("in_app", sa.Boolean(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("email_state", sa.String(length=16), nullable=False),
        sa.Column("email_attempts", sa.Integer(), nullable=False),
        sa.Column("email_next_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("email_sent_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("email_error", sa.String(length=200), nullable=False),
        sa.CheckConstraint(STATES, name=op.f("ck_notifications_email_state")),
        sa.CheckConstraint(KINDS, name=op.f("ck_notifications_kind")),
        sa.CheckConstraint(
            "email_attempts >= 0", name=op.f("ck_notifications_email_attempts_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("key", "user_id", name=op.f("uq_notifications_key_user_id")),
    )
    op.create_index(
        "ix_notifications_email_state_email_next_at",
        "notifications",
        ["email_state", "email_next_at"],
        unique=False,
    )
    op.create_index(
        "ix_notifications_user_id_read_at", "notifications", ["user_id", "read_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_user_id_read_at", table_name="notifications")
    op.drop_index("ix_notifications_email_state_email_next_at", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(
        op.f("ix_notification_preferences_user_id"), table_name="notification_preferences"
    )
    op.drop_table("notification_preferences")
