"""Claims (issue 14 §3, ADR 0017): points issued to an e-mail address with no verified account
are issued on chain to a claim wallet reserved for that address, and wait there.

- `claim_wallets`: one custodial key per address waiting to be claimed (sealed by the vault, as
  users' keys are). At most ONE unclaimed wallet per e-mail (a partial UNIQUE index), so every
  issuance and every town holds its points for that address in the same place. `claimed_by` is
  set once, by one conditional UPDATE, for the account that verified the address.
- `points_claims`: one row per issuance row held in a claim wallet: held -> taken (the wallet
  was claimed) -> moved (what the wallet held in that town was sent on to the account, or had
  expired); held -> lapsed when nobody claimed it and the wallet holds nothing more in that
  town (the points expired on chain, or the issuance failed), so staff no longer count it as
  waiting (a later claim of the wallet still takes it). UNIQUE (source, source_id): recording
  an issuance twice is one claim.
- `claim_transfers`: the relayed `transfer` that moves a claimed wallet's points of one town to
  its owner's wallet (one outbox row each, key claims.move:<wallet>:<town>:<n>): queued ->
  sent -> confirmed (the indexer saw its Transfer) or failed (then a later one may follow).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.chain.api import SealedKey
from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount, register_audit_town_table

HELD = "held"
TAKEN = "taken"
MOVED = "moved"
LAPSED = "lapsed"
CLAIM_STATES = (HELD, TAKEN, MOVED, LAPSED)

QUEUED = "queued"
SENT = "sent"
CONFIRMED = "confirmed"
FAILED = "failed"
TRANSFER_STATES = (QUEUED, SENT, CONFIRMED, FAILED)
LIVE = (QUEUED, SENT)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class ClaimWallet(Base):
    __tablename__ = "claim_wallets"
    __table_args__ = (
        # One wallet waiting per address: every issuance to it lands in the same wallet.
        Index(
            "uq_claim_wallets_waiting_email",
            "email",
            unique=True,
            sqlite_where=text("claimed_by IS NULL"),
            postgresql_where=text("claimed_by IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # lower-cased
    address: Mapped[str] = mapped_column(String(42), unique=True)  # EIP-55
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_data_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column()

    def sealed_key(self) -> SealedKey:
        return SealedKey.from_row(self)

    def __repr__(self) -> str:  # never the sealed bytes, nor the address's owner
        return f"ClaimWallet(id={self.id!r}, address={self.address!r})"


class PointsClaim(Base):
    __tablename__ = "points_claims"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint(f"state IN ({_in(CLAIM_STATES)})", name="state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_points_claims_town_state", "town_id", "state"),
        Index("ix_points_claims_wallet_state", "wallet_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("claim_wallets.id"))
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    programme_id: Mapped[int] = mapped_column()
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    # What issued it: ("issuance_row", <issuing's row id>); the batch for people to follow.
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[int] = mapped_column()
    batch_id: Mapped[int | None] = mapped_column()
    state: Mapped[str] = mapped_column(String(16), default=HELD)
    created_by: Mapped[str] = mapped_column(String(64))  # the audit actor, e.g. "user:7"
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    taken_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    taken_at: Mapped[dt.datetime | None] = mapped_column()
    moved_at: Mapped[dt.datetime | None] = mapped_column()


class ClaimTransfer(Base):
    __tablename__ = "claim_transfers"
    __table_args__ = (
        UniqueConstraint("wallet_id", "town_id", "number"),
        CheckConstraint(f"status IN ({_in(TRANSFER_STATES)})", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("claim_wallets.id"), index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    number: Mapped[int] = mapped_column()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    to_address: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()


# Audit rows about a claim or its transfer belong to its town (the console's audit log).
register_audit_town_table("points_claim", PointsClaim)
register_audit_town_table("claim_transfer", ClaimTransfer)
