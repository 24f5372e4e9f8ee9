"""Points bought with a premium (issue 14 §5): each town's offer (premium_offers), the card
purchases (premium_purchases: UNIQUE per user and form key, UNIQUE public id) and the monthly yen
counters of the per-person and town limits (premium_totals: UNIQUE per town, month and user).

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-04 21:10:21.193555
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db


revision: str = "0038"
down_revision: str | None = "0037"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "premium_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=False),
        sa.Column("premium_percent", sa.Integer(), nullable=False),
        sa.Column("unit_yen", sa.BigInteger(), nullable=False),
        sa.Column("max_yen_per_purchase", sa.BigInteger(), nullable=False),
        sa.Column("person_month_yen", sa.BigInteger(), nullable=False),
        sa.Column("town_month_yen", sa.BigInteger(), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_premium_offers_town_id_towns")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name=op.f("fk_premium_offers_updated_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_premium_offers")),
        sa.UniqueConstraint("town_id", name=op.f("uq_premium_offers_town_id")),
    )
    op.create_table(
        "premium_purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("yen", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("premium_percent", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.BigInteger(), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reserved_month", sa.String(length=7), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_payment_id", sa.String(length=120), nullable=True),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("issue_attempts", sa.Integer(), nullable=False),
        sa.Column("refund_ref", sa.String(length=120), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paid_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("issued_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_premium_purchases_town_id_towns")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_premium_purchases_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_premium_purchases")),
        sa.UniqueConstraint("public_id", name=op.f("uq_premium_purchases_public_id")),
        sa.UniqueConstraint(
            "user_id", "request_key", name=op.f("uq_premium_purchases_user_id_request_key")
        ),
    )
    with op.batch_alter_table("premium_purchases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_premium_purchases_outbox_tx_id"), ["outbox_tx_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_premium_purchases_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_premium_purchases_town_id"), ["town_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_premium_purchases_user_id"), ["user_id"], unique=False)

    op.create_table(
        "premium_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("total_yen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_premium_totals_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_premium_totals")),
        sa.UniqueConstraint(
            "town_id", "month", "user_id", name=op.f("uq_premium_totals_town_id_month_user_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("premium_totals")
    with op.batch_alter_table("premium_purchases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_premium_purchases_user_id"))
        batch_op.drop_index(batch_op.f("ix_premium_purchases_town_id"))
        batch_op.drop_index(batch_op.f("ix_premium_purchases_status"))
        batch_op.drop_index(batch_op.f("ix_premium_purchases_outbox_tx_id"))

    op.drop_table("premium_purchases")
    op.drop_table("premium_offers")
