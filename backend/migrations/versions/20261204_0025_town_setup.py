"""town_setups, town_setup_steps, platform_operators, town_invites: onboarding a town

A town's setup through the outbox, one row per transaction (ADR 0013); the platform operators
who may onboard towns; the one-time sign-in links that invite a town's first admin.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import backend.core.db
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "town_setups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(60), nullable=False, unique=True),
        sa.Column("name_ja", sa.String(120), nullable=False),
        sa.Column("name_en", sa.String(120), nullable=False),
        sa.Column("prefecture_ja", sa.String(60), nullable=False),
        sa.Column("prefecture_en", sa.String(60), nullable=False),
        sa.Column("points_symbol", sa.String(16), nullable=False),
        sa.Column("admin_email", sa.String(254), nullable=True),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=True, unique=True),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("town_id", sa.Integer(), sa.ForeignKey("towns.id"), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('running', 'failed', 'live')", name="state"),
    )
    op.create_table(
        "town_setup_steps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "setup_id",
            sa.Integer(),
            sa.ForeignKey("town_setups.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("outbox_key", sa.String(200), nullable=True),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(42), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("setup_id", "name"),
        sa.CheckConstraint(
            "state IN ('waiting', 'queued', 'sent', 'confirmed', 'failed')", name="state"
        ),
    )
    op.create_table(
        "platform_operators",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False, unique=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "town_invites",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("town_id", sa.Integer(), sa.ForeignKey("towns.id"), nullable=False, index=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("town_invites")
    op.drop_table("platform_operators")
    op.drop_table("town_setup_steps")
    op.drop_table("town_setups")
