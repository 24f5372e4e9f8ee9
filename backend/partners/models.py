"""Partner towns: the partnership of two towns, the partner payments the chain recorded, the
monthly clearing settlements between the towns, and the history of each town's yen value of one
point (a version per month it changes in).

A partnership is one row per unordered pair of towns (`town_a_id` < `town_b_id`, UNIQUE): a
proposal from either side and the other side's approval are the same row.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount

# Partnership status: "proposed" by one town's staff; "approved" once the other town's staff
# approved (both setPartner calls queued); "active" when both PartnerSet events are indexed;
# "ended" when either town ended it; "proposed" again (next term) when one proposes anew.
PROPOSED, APPROVED, ACTIVE, ENDED = "proposed", "approved", "active", "ended"
PARTNERSHIP_STATUSES = "'proposed', 'approved', 'active', 'ended'"

# Clearing settlement status: "approving" (first approval), "approved" (a second, different
# member of the debtor town's staff), "settled" (with the bank transfer's reference).
APPROVING, CLEARING_APPROVED, SETTLED = "approving", "approved", "settled"


class Partnership(Base):
    """Two towns agreeing to accept each other's points. Town A is the lower town id."""

    __tablename__ = "partnerships"
    __table_args__ = (
        UniqueConstraint("town_a_id", "town_b_id"),
        CheckConstraint("town_a_id < town_b_id", name="ordered_pair"),
        CheckConstraint(f"status IN ({PARTNERSHIP_STATUSES})", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_a_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    town_b_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=PROPOSED)
    # 1, then one more each time the towns start it again after it ended (the same row: the
    # pair stays UNIQUE). It keeps each term's setPartner calls apart in the outbox's keys.
    term: Mapped[int] = mapped_column(default=1, server_default="1")
    # One approval per town: who and when (the proposer's town approves by proposing).
    a_approved_by: Mapped[int | None] = mapped_column()
    a_approved_at: Mapped[dt.datetime | None] = mapped_column()
    b_approved_by: Mapped[int | None] = mapped_column()
    b_approved_at: Mapped[dt.datetime | None] = mapped_column()
    # setPartner(other, true) on each town's points, through the outbox.
    a_outbox_tx_id: Mapped[int | None] = mapped_column()
    b_outbox_tx_id: Mapped[int | None] = mapped_column()
    a_confirmed_at: Mapped[dt.datetime | None] = mapped_column()
    b_confirmed_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_by: Mapped[int | None] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column()

    def other(self, town_id: int) -> int:
        return self.town_b_id if town_id == self.town_a_id else self.town_a_id

    def side(self, town_id: int) -> str:
        return "a" if town_id == self.town_a_id else "b"


class PartnerPayment(Base):
    """One PartnerPaymentAccepted event: `payer_town_id` owes `merchant_town_id` `amount`
    points' worth of yen. Written by the indexer handler, removed by its revert (reorg)."""

    __tablename__ = "partner_payments"
    __table_args__ = (UniqueConstraint("chain_id", "tx_hash", "log_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), index=True)
    log_index: Mapped[int] = mapped_column()
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_time: Mapped[dt.datetime] = mapped_column()
    month: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM of the block, JST
    payer_town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    merchant_town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    merchant: Mapped[str] = mapped_column(String(42))
    payer: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    ref: Mapped[str] = mapped_column(String(66))


class ClearingSettlement(Base):
    """One month's clearing of a pair of towns: the net amount the debtor town pays the
    creditor town in yen, as the statement stood when staff approved it, then its bank
    reference. One per pair and month."""

    __tablename__ = "clearing_settlements"
    __table_args__ = (
        UniqueConstraint("town_a_id", "town_b_id", "month"),
        CheckConstraint("town_a_id < town_b_id", name="ordered_pair"),
        CheckConstraint("status IN ('approving', 'approved', 'settled')", name="status"),
        CheckConstraint("yen >= 0", name="yen_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_a_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    town_b_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    month: Mapped[str] = mapped_column(String(7))
    # The statement approved: points paid with A's points at B's shops and the reverse, and
    # each town's yen per point in force that month; the debtor pays `yen` to the creditor.
    points_a_to_b: Mapped[Decimal] = mapped_column(TokenAmount)
    points_b_to_a: Mapped[Decimal] = mapped_column(TokenAmount)
    rate_a: Mapped[int] = mapped_column()
    rate_b: Mapped[int] = mapped_column()
    debtor_town_id: Mapped[int | None] = mapped_column()
    creditor_town_id: Mapped[int | None] = mapped_column()
    yen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=APPROVING)
    approved_by: Mapped[int] = mapped_column()
    approved_at: Mapped[dt.datetime] = mapped_column()
    second_approved_by: Mapped[int | None] = mapped_column()
    second_approved_at: Mapped[dt.datetime | None] = mapped_column()
    bank_reference: Mapped[str | None] = mapped_column(Text)
    settled_by: Mapped[int | None] = mapped_column()
    settled_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# The month a rate is in force from when it was in force before any month mattered: the rate a
# town set before rates had months (migration 0048), and the platform's 1 yen of a town that
# never set one (the row is made on the town's first change, and its lock serialises changes).
# It sorts before every real YYYY-MM.
FROM_THE_START = "0000-01"


class PointRateVersion(Base):
    """A town's yen value of one point, for clearing, in force from the JST month
    `effective_from` until the month of the town's next version (1 yen when there is none).

    A change made in month M is in force from M + 1, never in a month whose payments may already
    be on chain, so the debtor cannot cut (nor the creditor raise) what is owed for points spent
    earlier. One row per town and month: changing it again before it is in force replaces the
    row (the audit log keeps every change). `set_by` is empty on the platform's default row."""

    __tablename__ = "town_point_rate_history"
    __table_args__ = (
        UniqueConstraint("town_id", "effective_from"),
        CheckConstraint("yen_per_point > 0", name="rate_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    effective_from: Mapped[str] = mapped_column(String(7))
    yen_per_point: Mapped[int] = mapped_column()
    set_by: Mapped[int | None] = mapped_column()
    set_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
