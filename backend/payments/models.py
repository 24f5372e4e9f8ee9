"""Orders for shop listings and the payment-provider events that moved them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount
from backend.nfts.models import Listing

# pending_payment (card: waiting for the provider) -> processing (mint or buy sent) ->
# completed (the indexer saw the mint) | failed (nothing taken) | refunded (card, mint failed)
# | declined (card refused by the provider)
ORDER_STATES = ("pending_payment", "processing", "completed", "failed", "refunded", "declined")


class Order(Base):
    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(120))
    listing_id: Mapped[int] = mapped_column(ForeignKey("nft_listings.id"), index=True)
    quantity: Mapped[int] = mapped_column()
    amount: Mapped[Decimal] = mapped_column(TokenAmount)  # price * quantity, exact
    payment_kind: Mapped[str] = mapped_column(String(16))
    buyer_address: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(20), index=True)
    provider: Mapped[str | None] = mapped_column(String(20))
    # The provider's reference (card) or ours; keccak256 of it is the on-chain paymentRef.
    payment_ref: Mapped[str] = mapped_column(String(120), unique=True)
    provider_payment_id: Mapped[str | None] = mapped_column(String(120))  # what refunds need
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    mint_attempts: Mapped[int] = mapped_column(default=0)
    first_token_id: Mapped[int | None] = mapped_column()
    refund_ref: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    listing: Mapped[Listing] = relationship()


class PaymentEventRecord(Base):
    """Every provider event processed, once: a webhook delivered twice finds its row here."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    order_public_id: Mapped[str | None] = mapped_column(String(40), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
