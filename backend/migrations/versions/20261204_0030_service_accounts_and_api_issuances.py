"""Service accounts and their API issuances (issue 14 §1-2): service_accounts, their hashed
API keys, their budget counters per JST day and month, and api_issuances (one per service and
idempotency key, pointing at the issuing row that carries it). An issuance batch is made by
town staff or by a service: created_by becomes nullable, service_account_id is added, and a
CHECK keeps one of the two.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04 21:08:51.420563
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("name_ja", sa.String(length=120), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("programme_ids", sa.JSON(), nullable=False),
        sa.Column("cap_per_issuance", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("daily_budget", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("monthly_budget", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("webhook_url", sa.String(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "cap_per_issuance IS NULL OR cap_per_issuance > 0",
            name=op.f("ck_service_accounts_cap_positive"),
        ),
        sa.CheckConstraint(
            "daily_budget > 0", name=op.f("ck_service_accounts_daily_budget_positive")
        ),
        sa.CheckConstraint(
            "monthly_budget IS NULL OR monthly_budget > 0",
            name=op.f("ck_service_accounts_monthly_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_service_accounts_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_service_accounts_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_accounts")),
        sa.UniqueConstraint("town_id", "name_en", name=op.f("uq_service_accounts_town_id_name_en")),
    )
    op.create_index(
        op.f("ix_service_accounts_town_id"), "service_accounts", ["town_id"], unique=False
    )
    op.create_table(
        "service_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_account_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_service_api_keys_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["users.id"], name=op.f("fk_service_api_keys_revoked_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name=op.f("fk_service_api_keys_service_account_id_service_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_service_api_keys_prefix")),
    )
    op.create_index(
        op.f("ix_service_api_keys_service_account_id"),
        "service_api_keys",
        ["service_account_id"],
        unique=False,
    )
    op.create_table(
        "service_budget_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_account_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("used", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.CheckConstraint(
            "period IN ('day', 'month')", name=op.f("ck_service_budget_usage_period")
        ),
        sa.CheckConstraint("used >= 0", name=op.f("ck_service_budget_usage_used_not_negative")),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name=op.f("fk_service_budget_usage_service_account_id_service_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_budget_usage")),
        sa.UniqueConstraint(
            "service_account_id",
            "period",
            "start",
            name=op.f("uq_service_budget_usage_service_account_id_period_start"),
        ),
    )
    op.create_table(
        "api_issuances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_account_id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("announced", sa.String(length=16), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_api_issuances_amount_positive")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["issuance_batches.id"],
            name=op.f("fk_api_issuances_batch_id_issuance_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["row_id"], ["issuance_rows.id"], name=op.f("fk_api_issuances_row_id_issuance_rows")
        ),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name=op.f("fk_api_issuances_service_account_id_service_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_api_issuances_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_issuances")),
        sa.UniqueConstraint("row_id", name=op.f("uq_api_issuances_row_id")),
        sa.UniqueConstraint(
            "service_account_id",
            "idempotency_key",
            name=op.f("uq_api_issuances_service_account_id_idempotency_key"),
        ),
    )
    op.create_index(op.f("ix_api_issuances_batch_id"), "api_issuances", ["batch_id"], unique=False)
    op.create_index(
        "ix_api_issuances_service_id", "api_issuances", ["service_account_id", "id"], unique=False
    )
    with op.batch_alter_table("issuance_batches") as b:
        b.add_column(sa.Column("service_account_id", sa.Integer(), nullable=True))
        b.alter_column("created_by", existing_type=sa.INTEGER(), nullable=True)
        b.create_index(b.f("ix_issuance_batches_service_account_id"), ["service_account_id"])
        b.create_foreign_key(
            b.f("fk_issuance_batches_service_account_id_service_accounts"),
            "service_accounts",
            ["service_account_id"],
            ["id"],
        )
        b.create_check_constraint(
            b.f("ck_issuance_batches_creator"),
            "created_by IS NOT NULL OR service_account_id IS NOT NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("issuance_batches") as b:
        b.drop_constraint(b.f("ck_issuance_batches_creator"), type_="check")
        b.drop_constraint(
            b.f("fk_issuance_batches_service_account_id_service_accounts"), type_="foreignkey"
        )
        b.drop_index(b.f("ix_issuance_batches_service_account_id"))
        b.alter_column("created_by", existing_type=sa.INTEGER(), nullable=False)
        b.drop_column("service_account_id")
    op.drop_index("ix_api_issuances_service_id", table_name="api_issuances")
    op.drop_index(op.f("ix_api_issuances_batch_id"), table_name="api_issuances")
    op.drop_table("api_issuances")
    op.drop_table("service_budget_usage")
    op.drop_index(op.f("ix_service_api_keys_service_account_id"), table_name="service_api_keys")
    op.drop_table("service_api_keys")
    op.drop_index(op.f("ix_service_accounts_town_id"), table_name="service_accounts")
    op.drop_table("service_accounts")
