"""Money paths (issue 11 §1-§3): single-use customer codes, daily spend counters, per-shop PIN
counters and PIN-pad sessions for printed cards, the towns' money settings, shops' bank accounts;
settlements get approvals (four eyes), a failure reason, and the statuses 'approved', 'failed'.

Printed cards keep their PIN hash; PINs are 6 digits from now on, so a card issued with a 4-digit
PIN must be replaced by town staff (docs/operations.md); the demo card is re-issued by demo data.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 12:31:20.490381
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db


revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('redeeming', 'requested', 'settled')"
NEW_STATUSES = "status IN ('redeeming', 'requested', 'approved', 'settled', 'failed')"


def upgrade() -> None:
    op.create_table(
        "spend_counters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=60), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_spend_counters_amount_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_counters")),
        sa.UniqueConstraint("subject", "day", name=op.f("uq_spend_counters_subject_day")),
    )
    op.create_table(
        "customer_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("charge_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_customer_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_customer_codes_code_hash")),
    )
    with op.batch_alter_table("customer_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_codes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "town_money_settings",
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("customer_daily_limit", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("card_daily_limit", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("four_eyes_amount", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("originator_code", sa.String(length=10), nullable=True),
        sa.Column("originator_name", sa.String(length=40), nullable=True),
        sa.Column("bank_code", sa.String(length=4), nullable=True),
        sa.Column("bank_name", sa.String(length=15), nullable=True),
        sa.Column("branch_code", sa.String(length=3), nullable=True),
        sa.Column("branch_name", sa.String(length=15), nullable=True),
        sa.Column("account_type", sa.String(length=1), nullable=True),
        sa.Column("account_number", sa.String(length=7), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_town_money_settings_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("town_id", name=op.f("pk_town_money_settings")),
    )
    op.create_table(
        "card_pin_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["resident_cards.id"],
            name=op.f("fk_card_pin_failures_card_id_resident_cards"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_card_pin_failures_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_pin_failures")),
        sa.UniqueConstraint(
            "card_id", "merchant_id", name=op.f("uq_card_pin_failures_card_id_merchant_id")
        ),
    )
    with op.batch_alter_table("card_pin_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_pin_failures_card_id"), ["card_id"], unique=False)

    op.create_table(
        "merchant_bank_accounts",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("bank_name", sa.String(length=15), nullable=False),
        sa.Column("branch_code", sa.String(length=3), nullable=False),
        sa.Column("branch_name", sa.String(length=15), nullable=False),
        sa.Column("account_type", sa.String(length=1), nullable=False),
        sa.Column("account_number", sa.String(length=7), nullable=False),
        sa.Column("holder_name", sa.String(length=30), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=False),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_merchant_bank_accounts_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_merchant_bank_accounts")),
    )
    op.create_table(
        "pin_pad_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("charge_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["resident_cards.id"],
            name=op.f("fk_pin_pad_sessions_card_id_resident_cards"),
        ),
        sa.ForeignKeyConstraint(
            ["charge_id"],
            ["merchant_charges.id"],
            name=op.f("fk_pin_pad_sessions_charge_id_merchant_charges"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_pin_pad_sessions_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pin_pad_sessions")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_pin_pad_sessions_charge_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pin_pad_sessions_token_hash")),
    )
    with op.batch_alter_table("pin_pad_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pin_pad_sessions_card_id"), ["card_id"], unique=False)

    with op.batch_alter_table("merchant_settlements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("approved_at", backend.core.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("second_approved_by", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "second_approved_at", backend.core.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_merchant_settlements_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_merchant_settlements_status"), NEW_STATUSES)


def downgrade() -> None:
    # Back to three statuses: an approval is forgotten (requested again); a failed burn goes
    # back to 'redeeming', where the old code left it.
    op.execute(
        sa.text("UPDATE merchant_settlements SET status = 'requested' WHERE status = 'approved'")
    )
    op.execute(
        sa.text("UPDATE merchant_settlements SET status = 'redeeming' WHERE status = 'failed'")
    )
    with op.batch_alter_table("merchant_settlements", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_merchant_settlements_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_merchant_settlements_status"), OLD_STATUSES)
        batch_op.drop_column("failure_reason")
        batch_op.drop_column("second_approved_at")
        batch_op.drop_column("second_approved_by")
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")

    with op.batch_alter_table("pin_pad_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pin_pad_sessions_card_id"))

    op.drop_table("pin_pad_sessions")
    op.drop_table("merchant_bank_accounts")
    with op.batch_alter_table("card_pin_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_pin_failures_card_id"))

    op.drop_table("card_pin_failures")
    op.drop_table("town_money_settings")
    with op.batch_alter_table("customer_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_codes_user_id"))

    op.drop_table("customer_codes")
    op.drop_table("spend_counters")
