"""Issuance tables: a batch (one decision by town staff: programme, reason, recipients), its
rows (one recipient and amount each, as typed and as resolved) and its chunks (one
`issueBatch` call each, one outbox row each).

States of a batch: previewed (rows resolved, nothing sent) -> confirmed (chunks queued) or
awaiting_approval (above the town's four-eyes amount) -> approved (chunks queued) -> sending
(the chain has a transaction) -> done (every chunk confirmed by the indexer) or failed (some
chunk failed; its rows say so). Rows: ready | invalid (preview) -> queued -> sent ->
confirmed | failed. A batch's idempotency key is UNIQUE: a repeated upload or form is one batch.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount, register_audit_town_table

PREVIEWED = "previewed"
CONFIRMED = "confirmed"
AWAITING_APPROVAL = "awaiting_approval"
APPROVED = "approved"
SENDING = "sending"
DONE = "done"
FAILED = "failed"
BATCH_STATES = (PREVIEWED, CONFIRMED, AWAITING_APPROVAL, APPROVED, SENDING, DONE, FAILED)
IN_FLIGHT = (CONFIRMED, APPROVED, SENDING)  # chunks queued, not all final yet

READY = "ready"
INVALID = "invalid"
QUEUED = "queued"
SENT = "sent"
ROW_CONFIRMED = "confirmed"
ROW_FAILED = "failed"
ROW_STATES = (READY, INVALID, QUEUED, SENT, ROW_CONFIRMED, ROW_FAILED)

EMAIL = "email"
CUSTOMER_CODE = "customer_code"
CARD = "card"
ADDRESS = "address"
RECIPIENT_KINDS = (EMAIL, CUSTOMER_CODE, CARD, ADDRESS)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class IssuanceBatch(Base):
    __tablename__ = "issuance_batches"
    __table_args__ = (
        CheckConstraint(f"state IN ({_in(BATCH_STATES)})", name="state"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        # Town staff or a service account (issue 14's /api/v1) created it: one of the two.
        CheckConstraint("created_by IS NOT NULL OR service_account_id IS NOT NULL", name="creator"),
        Index("ix_issuance_batches_town_created", "town_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    programme_id: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # "single", "csv", "api" or "service"
    file_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), default=PREVIEWED)
    # "<town>:<user>:<the caller's key>": a repeated form or upload finds its batch.
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    total: Mapped[Decimal] = mapped_column(TokenAmount)  # of the ready rows
    ready_rows: Mapped[int] = mapped_column(default=0)
    invalid_rows: Mapped[int] = mapped_column(default=0)
    four_eyes_amount: Mapped[Decimal] = mapped_column(TokenAmount)  # the limit at preview
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The service whose API request made it (backend/integrations owns that table; issuing
    # only records who asked, by a foreign key, and never imports that domain).
    service_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_accounts.id"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    @property
    def needs_approval(self) -> bool:
        return self.total > self.four_eyes_amount


class IssuanceChunk(Base):
    """One `issueBatch` call of a batch: its outbox row (key issuing.batch:<id>:chunk:<n>)."""

    __tablename__ = "issuance_chunks"
    __table_args__ = (
        UniqueConstraint("batch_id", "number"),
        CheckConstraint(f"status IN ({_in(ROW_STATES)})", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("issuance_batches.id"), index=True)
    number: Mapped[int] = mapped_column()
    recipients: Mapped[int] = mapped_column()
    total: Mapped[Decimal] = mapped_column(TokenAmount)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    error: Mapped[str] = mapped_column(Text, default="")
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()


class IssuanceRow(Base):
    __tablename__ = "issuance_rows"
    __table_args__ = (
        UniqueConstraint("batch_id", "line"),
        CheckConstraint(f"status IN ({_in(ROW_STATES)})", name="status"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("issuance_batches.id"), index=True)
    line: Mapped[int] = mapped_column()  # the file's line number (1: the header)
    recipient: Mapped[str] = mapped_column(String(300))  # as typed
    kind: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    address: Mapped[str | None] = mapped_column(String(42))
    amount: Mapped[Decimal | None] = mapped_column(TokenAmount)
    note: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")  # an English msgid (translated on show)
    error_args: Mapped[str] = mapped_column(Text, default="")  # JSON of its placeholders
    chunk_id: Mapped[int | None] = mapped_column(ForeignKey("issuance_chunks.id"), index=True)

    @property
    def held(self) -> bool:
        """An e-mail address no account has verified: the points go to the claim wallet
        waiting for it (backend/claims, ADR 0017) and are held there until it is claimed."""
        return self.kind == EMAIL and self.user_id is None and self.address is not None


# Audit rows about an issuance belong to its town (the console's audit log).
register_audit_town_table("issuance_batch", IssuanceBatch)
