"""Merchants, their staff, charges, residents' printed cards and settlements."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
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

# Merchant status: "registering" until MerchantAdded is indexed; "failed" when its addMerchant
# call failed on chain (town staff register it again: registration.py).
REGISTERING, ACTIVE, SUSPENDED = "registering", "active", "suspended"
REGISTRATION_FAILED = "failed"
# Charge status
PENDING, PAYING, PAID, EXPIRED, FAILED = "pending", "paying", "paid", "expired", "failed"
CANCELLED = "cancelled"  # by the shop's staff while still pending (nothing was taken)
CHARGE_STATUSES = "'pending', 'paying', 'paid', 'expired', 'failed', 'cancelled'"
# How a charge was paid
BY_QR, BY_CUSTOMER_CODE, BY_CARD = "qr", "customer_code", "card"
BY_PROXY = "proxy"  # a QR charge paid by a family proxy from the resident's points (proxies.py)
# Settlement status: "redeeming" until PointsRedeemed is indexed, then in the town's queue;
# "approved" by town staff (two different people above the town's four-eyes amount), then
# "settled" with the bank reference. "failed": the burn reverted, the shop keeps its points.
REDEEMING, REQUESTED, APPROVED, SETTLED = "redeeming", "requested", "approved", "settled"
SETTLEMENT_FAILED = "failed"
SETTLEMENT_STATUSES = "'redeeming', 'requested', 'approved', 'settled', 'failed'"


class Merchant(Base):
    """A shop registered with a town. Its points address is a custodial key of the platform."""

    __tablename__ = "merchants"
    __table_args__ = (
        CheckConstraint(
            "status IN ('registering', 'active', 'suspended', 'failed')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    address: Mapped[str] = mapped_column(String(42), unique=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_data_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=REGISTERING)
    registered_by: Mapped[int | None] = mapped_column()
    outbox_tx_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def name(self, locale: str) -> str:
        return self.name_ja if locale == "ja" else self.name_en

    def sealed_key(self) -> SealedKey:
        return SealedKey.from_row(self)

    def __repr__(self) -> str:  # never the sealed bytes
        return f"Merchant(id={self.id!r}, address={self.address!r})"


class MerchantStaff(Base):
    """A user who works for a merchant (charges, sales, redemption)."""

    __tablename__ = "merchant_staff"
    __table_args__ = (UniqueConstraint("merchant_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Charge(Base):
    """A payment of points to a merchant: pending -> paying -> paid | failed; a pending one
    ends expired (its time ran out) or cancelled (by the shop's staff)."""

    __tablename__ = "merchant_charges"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"status IN ({CHARGE_STATUSES})", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    method: Mapped[str] = mapped_column(String(16), default=BY_QR)
    created_by: Mapped[int] = mapped_column()
    payer_user_id: Mapped[int | None] = mapped_column(index=True)
    helper_user_id: Mapped[int | None] = mapped_column()
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    # Whose points paid: the shop's town, or a partner town's (payPartnerMerchant). None on
    # charges not paid yet (and on those paid before partner towns existed: the shop's town).
    points_town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    paid_at: Mapped[dt.datetime | None] = mapped_column()


class ResidentCard(Base):
    """A printed QR card for a resident without a phone: a card code and a hashed PIN.

    One card per resident and town: it pays that town's shops only. Each town issues its own;
    a new card in the same town replaces the old one (new code and PIN) only when staff say so.
    """

    __tablename__ = "resident_cards"
    __table_args__ = (UniqueConstraint("user_id", "town_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    card_code: Mapped[str] = mapped_column(String(32), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(255))
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TownHallRegistration(Base):
    """A resident registered in person at the town hall (issue 15 §1): an account with a name
    only (no e-mail, no password: it can neither receive mail nor sign in), its card, and the
    staff member's record that they saw an ID. UNIQUE (town, request key): a double submit of
    the form registers one person."""

    __tablename__ = "town_hall_registrations"
    __table_args__ = (
        UniqueConstraint("town_id", "request_key"),
        UniqueConstraint("user_id"),
        CheckConstraint("id_seen", name="id_seen"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    request_key: Mapped[str] = mapped_column(String(64))
    name_kana: Mapped[str] = mapped_column(String(80), default="")
    # Always true: the service refuses to register anyone without it (and so does the table).
    id_seen: Mapped[bool] = mapped_column()
    id_kind: Mapped[str] = mapped_column(String(20), default="")
    registered_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Settlement(Base):
    """A merchant's redemption of points, settled in yen by the town:
    redeeming -> requested (burn indexed) -> settled (bank transfer reference)."""

    __tablename__ = "merchant_settlements"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"status IN ({SETTLEMENT_STATUSES})", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    ref: Mapped[str] = mapped_column(String(66), unique=True)  # bytes32 given to redeem()
    status: Mapped[str] = mapped_column(String(16), default=REDEEMING, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    requested_by: Mapped[int] = mapped_column()
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    redeemed_at: Mapped[dt.datetime | None] = mapped_column()
    bank_reference: Mapped[str | None] = mapped_column(Text)
    settled_by: Mapped[int | None] = mapped_column()
    settled_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Four eyes: the first approver, and above the town's amount a second, different one.
    approved_by: Mapped[int | None] = mapped_column()
    approved_at: Mapped[dt.datetime | None] = mapped_column()
    second_approved_by: Mapped[int | None] = mapped_column()
    second_approved_at: Mapped[dt.datetime | None] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(Text)


class CustomerCode(Base):
    """A single-use code the customer's phone asks for: only its keyed hash is stored. The first
    charge claims it (one conditional UPDATE) and binds it to one shop and one amount."""

    __tablename__ = "customer_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    claimed_at: Mapped[dt.datetime | None] = mapped_column()
    merchant_id: Mapped[int | None] = mapped_column()
    amount: Mapped[Decimal | None] = mapped_column(TokenAmount)
    charge_id: Mapped[int | None] = mapped_column()


class SpendCounter(Base):
    """Points spent today (JST) by one subject ("user:<id>:town:<id>" or "card:<id>"); raised
    only by a conditional UPDATE that keeps it within the town's daily limit."""

    __tablename__ = "spend_counters"
    __table_args__ = (
        UniqueConstraint("subject", "day"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(60))
    day: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(TokenAmount, default=0)


class CardPinFailures(Base):
    """Wrong PINs of one card at one shop: a shop can lock the card for itself, not everywhere."""

    __tablename__ = "card_pin_failures"
    __table_args__ = (UniqueConstraint("card_id", "merchant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("resident_cards.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    failures: Mapped[int] = mapped_column(default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column()


class TownMoneySettings(Base):
    """A town's money rules (daily limits, four-eyes amount; None = the platform default) and
    its own bank account, the originator of the 全銀協 transfer file."""

    __tablename__ = "town_money_settings"

    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), primary_key=True)
    customer_daily_limit: Mapped[Decimal | None] = mapped_column(TokenAmount)
    card_daily_limit: Mapped[Decimal | None] = mapped_column(TokenAmount)
    four_eyes_amount: Mapped[Decimal | None] = mapped_column(TokenAmount)
    # A batch of points issued by staff above this waits for a second member of staff.
    issue_four_eyes_amount: Mapped[Decimal | None] = mapped_column(TokenAmount)
    # A raise of a four-eyes amount proposed by one member of staff, waiting for another to
    # confirm it (merchants/limits.py), and who proposed it; None when no raise waits.
    four_eyes_amount_raise: Mapped[Decimal | None] = mapped_column(TokenAmount)
    four_eyes_amount_raise_by: Mapped[int | None] = mapped_column()
    issue_four_eyes_amount_raise: Mapped[Decimal | None] = mapped_column(TokenAmount)
    issue_four_eyes_amount_raise_by: Mapped[int | None] = mapped_column()
    originator_code: Mapped[str | None] = mapped_column(String(10))
    originator_name: Mapped[str | None] = mapped_column(String(40))
    bank_code: Mapped[str | None] = mapped_column(String(4))
    bank_name: Mapped[str | None] = mapped_column(String(15))
    branch_code: Mapped[str | None] = mapped_column(String(3))
    branch_name: Mapped[str | None] = mapped_column(String(15))
    account_type: Mapped[str | None] = mapped_column(String(1))
    account_number: Mapped[str | None] = mapped_column(String(7))
    updated_by: Mapped[int | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class MerchantBankAccount(Base):
    """Where the town pays a shop: seen and changed by town staff only. Names are half-width
    katakana, as the 全銀協 format carries them."""

    __tablename__ = "merchant_bank_accounts"

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    bank_code: Mapped[str] = mapped_column(String(4))
    bank_name: Mapped[str] = mapped_column(String(15))
    branch_code: Mapped[str] = mapped_column(String(3))
    branch_name: Mapped[str] = mapped_column(String(15))
    account_type: Mapped[str] = mapped_column(String(1))
    account_number: Mapped[str] = mapped_column(String(7))
    holder_name: Mapped[str] = mapped_column(String(30))
    updated_by: Mapped[int] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PinPadSession(Base):
    """A card charge waiting for the resident's PIN on the PIN pad. The pad's URL carries a
    random token (only its hash is stored); the PIN goes from the pad straight to the server."""

    __tablename__ = "pin_pad_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("merchant_charges.id"), unique=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("resident_cards.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    done_at: Mapped[dt.datetime | None] = mapped_column()


class ProxyLink(Base):
    """A family member (`proxy_user_id`, an account of their own) who may see a resident's
    balance in the town and pay shops' charges from the resident's points, within the limits
    (points per payment, per JST day). Agreed in person at the town hall: the staff member who
    linked them records it (`agreed_in_person`, always true). Ended by staff (`ended_at`);
    "switching" is ending one link and making another. One active link per (resident, proxy)
    in a town; UNIQUE (town, request key): a double submit links once (issue 15 §1, ADR 0023)."""

    __tablename__ = "proxy_links"
    __table_args__ = (
        UniqueConstraint("town_id", "request_key"),
        CheckConstraint("agreed_in_person", name="agreed_in_person"),
        CheckConstraint("resident_user_id <> proxy_user_id", name="not_self"),
        CheckConstraint("per_payment_limit > 0", name="per_payment_positive"),
        CheckConstraint("daily_limit >= per_payment_limit", name="daily_covers_payment"),
        Index(
            "uq_proxy_links_active",
            "town_id",
            "resident_user_id",
            "proxy_user_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    resident_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    proxy_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    relation: Mapped[str] = mapped_column(String(40), default="")
    per_payment_limit: Mapped[Decimal] = mapped_column(TokenAmount)
    daily_limit: Mapped[Decimal] = mapped_column(TokenAmount)
    # Always true: staff confirm that the resident and the family member agreed in person.
    agreed_in_person: Mapped[bool] = mapped_column()
    request_key: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    @property
    def active(self) -> bool:
        return self.ended_at is None


# Audit rows about a shop, a settlement or a charge belong to its town (the console's audit page).
register_audit_town_table("merchant", Merchant, detail_key="merchant_id")
register_audit_town_table("settlement", Settlement)
register_audit_town_table("charge", Charge)
register_audit_town_table("card", ResidentCard)
register_audit_town_table("proxy_link", ProxyLink)
