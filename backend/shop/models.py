"""The shop's tables: fan NFT collections, perks, listings and check-ins as the shop lists them
(ownership itself is projected from chain events), and orders with the payment-provider events
that moved them."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount, register_audit_town_table
from backend.regions.models import Town


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("town_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    slug: Mapped[str] = mapped_column(String(60))
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    description_ja: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32))  # a key of backend/shop/categories.py
    contract_address: Mapped[str | None] = mapped_column(String(42))
    max_supply: Mapped[int] = mapped_column()
    price_points: Mapped[Decimal | None] = mapped_column(TokenAmount)
    price_yen: Mapped[Decimal | None] = mapped_column(TokenAmount)
    # What the console creates a collection with (backend/shop/console.py); a collection of the
    # deployment has the defaults (status live, no uploaded image).
    symbol: Mapped[str] = mapped_column(String(12), default="")
    royalty_bps: Mapped[int] = mapped_column(default=0)
    soulbound: Mapped[bool] = mapped_column(default=False)
    votes: Mapped[bool] = mapped_column(default=False)
    image_data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    image_type: Mapped[str | None] = mapped_column(String(20))  # image/png, image/jpeg, image/webp
    # creating (createCollection queued) -> setting_up (address known, set-up calls queued) ->
    # live (the collection's admin is the town's timelock)
    status: Mapped[str] = mapped_column(String(16), default="live")
    create_tx_id: Mapped[int | None] = mapped_column(index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    town: Mapped[Town] = relationship()

    def name(self, locale: str) -> str:
        return self.name_ja if locale == "ja" else self.name_en


class Perk(Base):
    """A perk of a collection as the shop shows it; the rule itself (uses per token, until when)
    is set on chain with FanCollection.setPerk and uses are counted there."""

    __tablename__ = "nft_perks"
    __table_args__ = (UniqueConstraint("collection_id", "perk_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    perk_id: Mapped[int] = mapped_column()  # the on-chain perk id
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    uses_per_token: Mapped[int] = mapped_column()
    valid_until: Mapped[dt.datetime | None] = mapped_column()
    outbox_tx_id: Mapped[int | None] = mapped_column()  # the latest setPerk sent for it
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    collection: Mapped[Collection] = relationship()

    def name(self, locale: str) -> str:
        return self.name_ja if locale == "ja" else self.name_en


class PerkUse(Base):
    """How many times a perk was used on one token of a collection contract, projected from the
    confirmed PerkUsed events (shop handlers): "my collection" shows the uses left from here
    and the perk's rule (Perk) instead of asking the node (issue 16 §1)."""

    __tablename__ = "nft_perk_uses"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    token_id: Mapped[Decimal] = mapped_column(TokenAmount, primary_key=True)
    perk_id: Mapped[Decimal] = mapped_column(TokenAmount, primary_key=True)
    used: Mapped[int] = mapped_column(default=0)


PAYMENT_KINDS = ("points", "stablecoin", "card")


class Listing(Base):
    """A PrimarySale listing mirrored in SQL: what the shop sells, how it is paid and for how
    much. `chain_listing_id` is set when the indexer sees ListingCreated for `outbox_tx_id`;
    each town has its own PrimarySale, so the id is unique within the town only."""

    __tablename__ = "nft_listings"
    __table_args__ = (UniqueConstraint("town_id", "chain_listing_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    chain_listing_id: Mapped[int | None] = mapped_column()
    payment_kind: Mapped[str] = mapped_column(String(16))  # points | stablecoin | card
    price: Mapped[Decimal] = mapped_column(TokenAmount)  # points, test yen units, or yen
    supply: Mapped[int] = mapped_column()
    wallet_cap: Mapped[int] = mapped_column()
    starts_at: Mapped[dt.datetime] = mapped_column()
    ends_at: Mapped[dt.datetime] = mapped_column()
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    # Only buyers on its allowlist (AllowlistEntry, each with a signed voucher) may buy.
    allowlist_only: Mapped[bool] = mapped_column(default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Tokens sold on chain: the quantities of the confirmed Purchased and PaidOffChainMinted
    # events of this listing (shop handlers), so the shop page reads what is left from SQL
    # (`supply` is the listing's supply on chain: createListing sets it and nothing changes it).
    sold: Mapped[int] = mapped_column(default=0, server_default="0")

    collection: Mapped[Collection] = relationship()
    town: Mapped[Town] = relationship()


class ListingStock(Base):
    """How many of a listing's tokens orders hold (pending payment, processing, completed):
    taken by one guarded UPDATE per new order, given back when an order fails, is declined or
    refunded (backend/shop/supply.py). A table of its own, not a column of nft_listings, so a
    buyer's row lock never waits on the indexer's updates of the listing."""

    __tablename__ = "nft_listing_stock"

    listing_id: Mapped[int] = mapped_column(ForeignKey("nft_listings.id"), primary_key=True)
    reserved: Mapped[int] = mapped_column(default=0)


class AllowlistEntry(Base):
    """One buyer an allowlist-only listing admits: an address given in the upload, or the
    custodial address of the person whose e-mail was given. `signature` is the EIP-712 voucher
    PrimarySale checks (signed by the `voucher_signer` key in the worker once the listing is on
    chain); its nonce is this row's id, its deadline the listing's end."""

    __tablename__ = "nft_allowlist"
    __table_args__ = (UniqueConstraint("listing_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("nft_listings.id"), index=True)
    address: Mapped[str] = mapped_column(String(42))
    email: Mapped[str | None] = mapped_column(String(254))
    max_quantity: Mapped[int] = mapped_column()
    deadline: Mapped[int] = mapped_column()  # unix seconds
    signature: Mapped[str | None] = mapped_column(String(132))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    """One use of a ticket's perk marked by venue staff: processing until PerkUsed is indexed."""

    __tablename__ = "nft_checkins"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    token_id: Mapped[int] = mapped_column()
    perk_id: Mapped[int] = mapped_column()
    holder_address: Mapped[str] = mapped_column(String(42))
    verifier_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="processing")  # done | failed
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# pending_payment (card: waiting for the provider) -> processing (mint or buy sent) ->
# completed (the indexer saw the mint) | failed (nothing taken) | refunded (card, mint failed)
# | declined (card refused by the provider)
ORDER_STATES = ("pending_payment", "processing", "completed", "failed", "refunded", "declined")
# Order.error of a card checkout left unpaid (declined by shop/card_payments.py, and refunded
# if it is paid after all).
CHECKOUT_EXPIRED = "checkout expired"


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

    @property
    def checkout_expired(self) -> bool:
        """Its card checkout was left unpaid too long (the pages say so, not "declined")."""
        return self.error == CHECKOUT_EXPIRED


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


def payment_ref_bytes(ref: str) -> str:
    """The on-chain paymentRef of an order: sha256 of our reference (bytes32 hex, unique)."""
    return "0x" + hashlib.sha256(ref.encode()).hexdigest()


# Audit rows about a listing belong to its town (the console's audit log).
register_audit_town_table("listing", Listing)


GIFT_QUEUED = "queued"  # the transfer is in the outbox or on its way
GIFT_DONE = "done"  # the chain confirmed it: the token is the recipient's
GIFT_FAILED = "failed"  # the transfer failed; the giver still holds the token
GIFT_STATES = (GIFT_QUEUED, GIFT_DONE, GIFT_FAILED)


class Gift(Base):
    """A token a custodial holder gave to another person or moved to their own wallet (issue 15
    §4): one relayed `safeTransferFrom` signed with the giver's custodial key. At most one gift
    of a token is on its way at a time (the partial UNIQUE index), and a form sent twice is one
    gift (`request_key`)."""

    __tablename__ = "nft_gifts"
    __table_args__ = (
        CheckConstraint("state IN ('" + "', '".join(GIFT_STATES) + "')", name="state"),
        Index(
            "uq_nft_gifts_token_in_flight",
            "collection_id",
            "token_id",
            unique=True,
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"), index=True)
    token_id: Mapped[int] = mapped_column(BigInteger)
    giver_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    from_address: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(8))  # "give" (to a person) or "move" (own wallet)
    state: Mapped[str] = mapped_column(String(8), default=GIFT_QUEUED)
    request_key: Mapped[str] = mapped_column(String(120), unique=True)
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    collection: Mapped[Collection] = relationship()


# Audit rows about a gift belong to its town (the console's audit log).
register_audit_town_table("nft_gift", Gift)
