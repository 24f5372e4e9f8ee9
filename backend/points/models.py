"""Points tables: a per-holder ledger projected from RegionPoints events, and the points the
platform grants by itself (welcome points today; backend/points/programmes.py says which kinds).

`PointsEntry` rows are written only by the indexer handlers (backend/points/handlers.py), in the
indexing transaction, and removed by their revert hooks on a reorg: the chain is the truth.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount

ISSUED = "issued"
PAID = "paid"
RECEIVED = "received"
REDEEMED = "redeemed"
EXPIRED = "expired"
KINDS = (ISSUED, PAID, RECEIVED, REDEEMED, EXPIRED)

GRANT_PENDING = "pending"
GRANT_CONFIRMED = "confirmed"


class PointsEntry(Base):
    """One confirmed movement of one holder's points (a transfer is two entries)."""

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index", "holder", "kind"),
        Index("ix_points_entries_contract_holder", "contract_address", "holder"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(String(42))
    holder: Mapped[str] = mapped_column(String(42))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    counterparty: Mapped[str | None] = mapped_column(String(42))
    programme_id: Mapped[int | None] = mapped_column()
    reason: Mapped[str] = mapped_column(Text, default="")
    # When an issued lot expires (00:00 JST of its expiry day); None: never.
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), index=True)
    log_index: Mapped[int] = mapped_column()
    # The outbox row that sent the transaction, when the platform sent it.
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PointsGrant(Base):
    """Points of one programme kind the platform granted one user in one town: at most one per
    user, town, programme and grant key. The UNIQUE constraint is the idempotency guard (money
    safety: two concurrent grants of welcome points insert one row, the other call finds it).
    A kind granted once per user (welcome) uses the grant key ""; a kind granted repeatedly
    would name each occasion by its key."""

    __tablename__ = "points_grants"
    __table_args__ = (UniqueConstraint("user_id", "town_id", "programme_id", "grant_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    programme_id: Mapped[int] = mapped_column()
    grant_key: Mapped[str] = mapped_column(String(64), default="", server_default="")
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    address: Mapped[str] = mapped_column(String(42))
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default=GRANT_PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()
