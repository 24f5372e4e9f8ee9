"""Tables of points bought with a premium: each town's offer, the purchases, and the yen
counters the per-person and town limits are checked against.

Yen are whole yen and points whole points (BigInteger): nothing here is a fraction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import register_audit_town_table

# pending_payment (sent to the card checkout) -> processing (paid; the issue is queued) ->
# issued (the chain confirmed the points) | refunded (paid, but nothing could be delivered)
# | declined (the card was refused) | expired (never paid in time) | failed (the checkout
# could not be opened: nothing was taken)
PENDING_PAYMENT = "pending_payment"
PROCESSING = "processing"
ISSUED = "issued"
REFUNDED = "refunded"
DECLINED = "declined"
EXPIRED = "expired"
FAILED = "failed"
STATES = (PENDING_PAYMENT, PROCESSING, ISSUED, REFUNDED, DECLINED, EXPIRED, FAILED)
TOWN = 0  # PremiumTotal.user_id of the whole town's counter


class PremiumOffer(Base):
    """A town's sale of points for yen (one row per town, edited in the console): yen are
    bought in steps of `unit_yen` up to `max_yen_per_purchase`, each yen giving
    1 + premium_percent/100 points, issued under the town's paid programme `programme_id`
    (whose expiry, at most 180 days, is the lot's). Limits per JST month: `person_month_yen`
    per person, `town_month_yen` for the whole town (None: no town limit)."""

    __tablename__ = "premium_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), unique=True)
    active: Mapped[bool] = mapped_column(default=False)
    programme_id: Mapped[int] = mapped_column(BigInteger)
    premium_percent: Mapped[int] = mapped_column()
    unit_yen: Mapped[int] = mapped_column(BigInteger)
    max_yen_per_purchase: Mapped[int] = mapped_column(BigInteger)
    person_month_yen: Mapped[int] = mapped_column(BigInteger)
    town_month_yen: Mapped[int | None] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def points_for(self, yen: int) -> int:
        """The points `yen` buy: exact, because the console keeps unit_yen * premium_percent a
        multiple of 100 and a purchase is a whole number of units."""
        return yen * (100 + self.premium_percent) // 100


class PremiumPurchase(Base):
    """One person's purchase of points by card. `request_key` is the buy form's one-time key
    (UNIQUE per user: a replayed form is the same purchase); `public_id` is what the card
    provider carries back (UNIQUE). Price, points, rate and programme are fixed at checkout.
    `reserved_month` is the JST month whose counters hold this purchase's yen (None once
    released, e.g. after a decline)."""

    __tablename__ = "premium_purchases"
    __table_args__ = (UniqueConstraint("user_id", "request_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    request_key: Mapped[str] = mapped_column(String(64))
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    address: Mapped[str] = mapped_column(String(42))
    yen: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    premium_percent: Mapped[int] = mapped_column()
    programme_id: Mapped[int] = mapped_column(BigInteger)
    expiry_days: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), index=True, default=PENDING_PAYMENT)
    reserved_month: Mapped[str | None] = mapped_column(String(7))
    provider: Mapped[str] = mapped_column(String(20))
    provider_payment_id: Mapped[str | None] = mapped_column(String(120))
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    issue_attempts: Mapped[int] = mapped_column(default=0)
    refund_ref: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[dt.datetime | None] = mapped_column()
    issued_at: Mapped[dt.datetime | None] = mapped_column()


class PremiumTotal(Base):
    """Yen reserved or sold in one JST month ("2026-12") of one town, by one person
    (`user_id`) or by everyone (`user_id` TOWN). A checkout raises both with a guarded UPDATE
    (`total + yen <= limit`) in its transaction; a purchase that ends unpaid lowers them."""

    __tablename__ = "premium_totals"
    __table_args__ = (UniqueConstraint("town_id", "month", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    month: Mapped[str] = mapped_column(String(7))
    user_id: Mapped[int] = mapped_column()
    total_yen: Mapped[int] = mapped_column(BigInteger, default=0)


# Audit rows about a purchase belong to its town (the console's audit log).
register_audit_town_table("premium_purchase", PremiumPurchase)
