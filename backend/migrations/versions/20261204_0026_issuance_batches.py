"""Issuing points by town staff (issue 13 §2): issuance_batches (one decision: town,
programme, reason, state, UNIQUE idempotency key), issuance_chunks (one issueBatch call and its
outbox row each) and issuance_rows (a recipient as typed and as resolved, amount > 0, status and
error); town_money_settings.issue_four_eyes_amount (NULL: the platform default).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 18:01:09.372632
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.core.db


revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issuance_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column("total", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("ready_rows", sa.Integer(), nullable=False),
        sa.Column("invalid_rows", sa.Integer(), nullable=False),
        sa.Column("four_eyes_amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", backend.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("approved_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('previewed', 'confirmed', 'awaiting_approval', 'approved', 'sending', "
            "'done', 'failed')",
            name=op.f("ck_issuance_batches_state"),
        ),
        sa.CheckConstraint("total >= 0", name=op.f("ck_issuance_batches_total_not_negative")),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_issuance_batches_approved_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by"], ["users.id"], name=op.f("fk_issuance_batches_confirmed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_issuance_batches_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["town_id"], ["towns.id"], name=op.f("fk_issuance_batches_town_id_towns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuance_batches")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_issuance_batches_idempotency_key")),
    )
    with op.batch_alter_table("issuance_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_issuance_batches_town_created", ["town_id", "created_at"], unique=False
        )

    op.create_table(
        "issuance_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("total", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outbox_tx_id", sa.Integer(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("confirmed_at", backend.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('ready', 'invalid', 'queued', 'sent', 'confirmed', 'failed')",
            name=op.f("ck_issuance_chunks_status"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["issuance_batches.id"],
            name=op.f("fk_issuance_chunks_batch_id_issuance_batches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuance_chunks")),
        sa.UniqueConstraint("batch_id", "number", name=op.f("uq_issuance_chunks_batch_id_number")),
    )
    with op.batch_alter_table("issuance_chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issuance_chunks_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_issuance_chunks_outbox_tx_id"), ["outbox_tx_id"], unique=False
        )

    op.create_table(
        "issuance_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=42), nullable=True),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("error_args", sa.Text(), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('ready', 'invalid', 'queued', 'sent', 'confirmed', 'failed')",
            name=op.f("ck_issuance_rows_status"),
        ),
        sa.CheckConstraint(
            "amount IS NULL OR amount > 0", name=op.f("ck_issuance_rows_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["issuance_batches.id"],
            name=op.f("fk_issuance_rows_batch_id_issuance_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["issuance_chunks.id"],
            name=op.f("fk_issuance_rows_chunk_id_issuance_chunks"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_issuance_rows_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issuance_rows")),
        sa.UniqueConstraint("batch_id", "line", name=op.f("uq_issuance_rows_batch_id_line")),
    )
    with op.batch_alter_table("issuance_rows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issuance_rows_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_issuance_rows_chunk_id"), ["chunk_id"], unique=False)

    with op.batch_alter_table("town_money_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("issue_four_eyes_amount", sa.Numeric(precision=78, scale=0), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("town_money_settings", schema=None) as batch_op:
        batch_op.drop_column("issue_four_eyes_amount")

    with op.batch_alter_table("issuance_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issuance_rows_chunk_id"))
        batch_op.drop_index(batch_op.f("ix_issuance_rows_batch_id"))

    op.drop_table("issuance_rows")
    with op.batch_alter_table("issuance_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issuance_chunks_outbox_tx_id"))
        batch_op.drop_index(batch_op.f("ix_issuance_chunks_batch_id"))

    op.drop_table("issuance_chunks")
    with op.batch_alter_table("issuance_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_issuance_batches_town_created")

    op.drop_table("issuance_batches")
