"""Tables of the transaction outbox (backend/chain/outbox/).

One `OutboxTx` per on-chain action, written in the same DB transaction as the business row that
needs it; every broadcast (first send, re-price, cancel no-op) is an `OutboxAttempt`; every state
change an `OutboxTxEvent`. `OutboxSender` holds the next nonce of each sending key and is the row
locked (SELECT ... FOR UPDATE) while nonces are assigned.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount


class OutboxTx(Base):
    """One on-chain action and where it stands: queued, sent, replaced, confirmed, ..."""

    __tablename__ = "outbox_txs"
    __table_args__ = (
        Index("ix_outbox_txs_sender_state", "sender_address", "state"),
        Index("ix_outbox_txs_sender_nonce", "sender_address", "nonce"),
        Index("ix_outbox_txs_subject", "subject_kind", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload_hash: Mapped[str] = mapped_column(String(66))
    state: Mapped[str] = mapped_column(String(16), index=True)
    # "relayer" for forwarded user requests, else the name of the role key that signs.
    sender_kind: Mapped[str] = mapped_column(String(40))
    sender_address: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int | None] = mapped_column()
    # The contract: a deployments key (resolved when sent) or an address.
    contract: Mapped[str] = mapped_column(String(120))
    function: Mapped[str] = mapped_column(String(80))
    args: Mapped[list[Any]] = mapped_column(JSON, default=list)
    call_data: Mapped[str] = mapped_column(Text)  # hex calldata of the call itself
    value: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    # A user's signed ERC-2771 request (from, to, value, gas, nonce, deadline, data, signature).
    forward_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    user_address: Mapped[str | None] = mapped_column(String(42), index=True)
    town_id: Mapped[int | None] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(index=True)
    # The business row that sent it, e.g. ("charge", 42); None for actions without one.
    subject_kind: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column()
    deadline_at: Mapped[dt.datetime | None] = mapped_column()
    gas_limit: Mapped[int | None] = mapped_column()
    max_fee_per_gas: Mapped[Decimal | None] = mapped_column(TokenAmount)
    max_priority_fee_per_gas: Mapped[Decimal | None] = mapped_column(TokenAmount)
    tx_hash: Mapped[str | None] = mapped_column(String(66), index=True)
    raw_tx: Mapped[str | None] = mapped_column(Text)  # the latest signed attempt, to re-send
    sent_block: Mapped[int | None] = mapped_column()
    broadcast_at: Mapped[dt.datetime | None] = mapped_column()
    block_number: Mapped[int | None] = mapped_column()
    gas_used: Mapped[int | None] = mapped_column()
    fee_paid: Mapped[Decimal | None] = mapped_column(TokenAmount)
    error_kind: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    attempts: Mapped[list[OutboxAttempt]] = relationship(
        back_populates="tx", order_by="OutboxAttempt.id", lazy="selectin"
    )


class OutboxAttempt(Base):
    """One signed transaction broadcast for an `OutboxTx` (same nonce across attempts)."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    tx_id: Mapped[int] = mapped_column(ForeignKey("outbox_txs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "call" or "cancel" (a 0-value no-op)
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    nonce: Mapped[int] = mapped_column()
    max_fee_per_gas: Mapped[Decimal] = mapped_column(TokenAmount)
    max_priority_fee_per_gas: Mapped[Decimal] = mapped_column(TokenAmount)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    tx: Mapped[OutboxTx] = relationship(back_populates="attempts")


class OutboxTxEvent(Base):
    """Every state transition of an outbox tx, with why it happened. Rows are only inserted."""

    __tablename__ = "outbox_tx_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    tx_id: Mapped[int] = mapped_column(ForeignKey("outbox_txs.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OutboxSender(Base):
    """A sending key's next nonce; locked while nonces are handed out."""

    __tablename__ = "outbox_senders"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column()
    reconciled_at: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ForwarderNonce(Base):
    """A user's next ERC-2771 forwarder nonce, handed out under a row lock when signing."""

    __tablename__ = "outbox_forwarder_nonces"

    user_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GasSpend(Base):
    """Gas paid per day for one town or one user (scope "town" or "user")."""

    __tablename__ = "outbox_gas_spend"
    __table_args__ = (UniqueConstraint("scope", "scope_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(10))
    scope_id: Mapped[int] = mapped_column()
    day: Mapped[dt.date] = mapped_column()
    wei: Mapped[Decimal] = mapped_column(TokenAmount, default=0)
    tx_count: Mapped[int] = mapped_column(default=0)


class OutboxAlert(Base):
    """An operator alert (e.g. a relayer low on funds); resolved when the cause goes away."""

    __tablename__ = "outbox_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column()
