"""Family proxies (issue 15 §1, ADR 0023): a family member linked at the town hall who may see
a resident's balance and pay shops from it within limits per payment and per JST day; one
active link per (town, resident, proxy) and a request key that makes a double submit link once.

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-05 00:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db

revision: str = "0042"
down_revision: str | None = "0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proxy_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("resident_user_id", sa.Integer(), nullable=False),
        sa.Column("proxy_user_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=40), nullable=False),
        sa.Column("per_payment_limit", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("daily_limit", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("agreed_in_person", sa.Boolean(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("agreed_in_person", name=op.f("ck_proxy_links_agreed_in_person")),
        sa.CheckConstraint(
            "daily_limit >= per_payment_limit", name=op.f("ck_proxy_links_daily_covers_payment")
        ),
        sa.CheckConstraint(
            "per_payment_limit > 0", name=op.f("ck_proxy_links_per_payment_positive")
        ),
        sa.CheckConstraint(
            "resident_user_id <> proxy_user_id", name=op.f("ck_proxy_links_not_self")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_proxy_links_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["ended_by"], ["users.id"], name=op.f("fk_proxy_links_ended_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["proxy_user_id"], ["users.id"], name=op.f("fk_proxy_links_proxy_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["resident_user_id"], ["users.id"], name=op.f("fk_proxy_links_resident_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_proxy_links_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proxy_links")),
        sa.UniqueConstraint(
            "town_id", "request_key", name=op.f("uq_proxy_links_town_id_request_key")
        ),
    )
    op.create_index(
        op.f("ix_proxy_links_proxy_user_id"), "proxy_links", ["proxy_user_id"], unique=False
    )
    op.create_index(
        op.f("ix_proxy_links_resident_user_id"), "proxy_links", ["resident_user_id"], unique=False
    )
    op.create_index(op.f("ix_proxy_links_town_id"), "proxy_links", ["town_id"], unique=False)
    op.create_index(
        "uq_proxy_links_active",
        "proxy_links",
        ["town_id", "resident_user_id", "proxy_user_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_proxy_links_active",
        table_name="proxy_links",
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.drop_index(op.f("ix_proxy_links_town_id"), table_name="proxy_links")
    op.drop_index(op.f("ix_proxy_links_resident_user_id"), table_name="proxy_links")
    op.drop_index(op.f("ix_proxy_links_proxy_user_id"), table_name="proxy_links")
    op.drop_table("proxy_links")
