"""Indexer handlers of the shop: listings created and the tokens they sold, perk uses (the
check-in done, the token's count of uses), factory-made collections (a console collection's
set-up is queued then), and orders (an order is completed when its mint or buy is indexed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import ChainEvent, EventHandler, OutboxTx, handler, watch_contract
from backend.regions.models import Town
from backend.shop.console import CollectionConsole
from backend.shop.models import CheckIn, Collection, Listing, Order, PerkUse, payment_ref_bytes
from backend.shop.supply import set_status


def outbox_tx_for(session: Session, ev: ChainEvent) -> OutboxTx | None:
    """The outbox row whose transaction emitted `ev` (its latest attempt's hash)."""
    return chain.outbox_tx_for(session, ev.tx_hash)


def _listing_created(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        tx = outbox_tx_for(session, ev)
        if tx is None:
            continue
        listing = session.scalar(select(Listing).where(Listing.outbox_tx_id == tx.id))
        if listing is not None and listing.chain_listing_id is None:
            listing.chain_listing_id = int(ev.args["listingId"])


def _listing_created_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    # By the outbox row that created it: every town's PrimarySale counts its ids from 1.
    for ev in events:
        tx = outbox_tx_for(session, ev)
        if tx is None:
            continue
        listing = session.scalar(select(Listing).where(Listing.outbox_tx_id == tx.id))
        if listing is not None and listing.chain_listing_id == int(ev.args["listingId"]):
            listing.chain_listing_id = None


def _checkins(session: Session, events: Sequence[ChainEvent]) -> Iterator[CheckIn]:
    """The check-ins whose platform transaction emitted these events."""
    for ev in events:
        tx = outbox_tx_for(session, ev)
        row = (
            None
            if tx is None
            else session.scalar(select(CheckIn).where(CheckIn.outbox_tx_id == tx.id))
        )
        if row is not None:
            yield row


def _count_perk_uses(session: Session, events: Sequence[ChainEvent], sign: int) -> None:
    """PerkUse.used += sign per PerkUsed event (any collection contract, ours or not)."""
    for ev in events:
        key = {
            "chain_id": ev.chain_id,
            "contract_address": ev.contract_address,
            "token_id": Decimal(int(ev.args["tokenId"])),
            "perk_id": Decimal(int(ev.args["perkId"])),
        }
        row = session.get(PerkUse, key)
        if row is None:
            row = PerkUse(**key, used=0)
            session.add(row)
        row.used = max(0, row.used + sign)
    session.flush()


def _perk_used(session: Session, events: Sequence[ChainEvent]) -> None:
    for row in _checkins(session, events):
        row.status = "done"
    _count_perk_uses(session, events, 1)


def _perk_used_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for row in _checkins(session, events):
        row.status = "processing"
    _count_perk_uses(session, events, -1)


def _collection_created(session: Session, events: Sequence[ChainEvent]) -> None:
    # Collections made by the factory after deployment are indexed from their creation block.
    for ev in events:
        address = ev.args["collection"]
        watch_contract(
            session,
            ev.chain_id,
            f"collections.{address}",
            "FanCollection",
            address,
            ev.block_number,
        )
        # A collection created from the staff console: record it and queue its set-up.
        tx = outbox_tx_for(session, ev)
        row = (
            None
            if tx is None
            else session.scalar(select(Collection).where(Collection.create_tx_id == tx.id))
        )
        if row is not None:
            _console(session).queue_setup(row, str(address))


def _console(session: Session) -> CollectionConsole:
    def no_gateway() -> chain.Web3Gateway:
        raise RuntimeError("the set-up needs no contract read")

    return CollectionConsole(session, chain=no_gateway, outbox=chain.outbox_service, public_url="")


def _noop(session: Session, events: Sequence[ChainEvent]) -> None:
    return None


def _order_for(session: Session, ev: ChainEvent) -> Order | None:
    tx = outbox_tx_for(session, ev)
    if tx is not None:
        order = session.scalar(select(Order).where(Order.outbox_tx_id == tx.id))
        if order is not None:
            return order
    ref = ev.args.get("paymentRef")
    if ref:
        for order in session.scalars(
            select(Order).where(Order.status == "processing", Order.payment_kind == "card")
        ):
            if payment_ref_bytes(order.payment_ref).lower() == str(ref).lower():
                return order
    return None


def _sold_listing(session: Session, ev: ChainEvent) -> int | None:
    """The id of the Listing row a PrimarySale event names: by its town (the sale contract is
    recorded as towns.<slug>.PrimarySale; each town's ids count from 1) and listing id."""
    parts = ev.contract_key.split(".")
    if len(parts) != 3 or parts[0] != "towns":
        return None
    town = select(Town.id).where(Town.slug == parts[1], Town.chain_id == ev.chain_id)
    return session.scalar(
        select(Listing.id).where(
            Listing.town_id.in_(town), Listing.chain_listing_id == int(ev.args["listingId"])
        )
    )


def _count_sold(session: Session, events: Sequence[ChainEvent], sign: int) -> None:
    for ev in events:
        listing_id = _sold_listing(session, ev)
        if listing_id is not None:
            session.execute(
                update(Listing)
                .where(Listing.id == listing_id)
                .values(sold=Listing.sold + sign * int(ev.args["quantity"]))
            )


def _sold(session: Session, events: Sequence[ChainEvent]) -> None:
    _count_sold(session, events, 1)


def _unsold(session: Session, events: Sequence[ChainEvent]) -> None:
    _count_sold(session, events, -1)


def _minted(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        order = _order_for(session, ev)
        if order is not None and order.status in ("processing", "failed"):
            set_status(session, order, "completed")
            order.first_token_id = int(ev.args["firstTokenId"])
            order.error = None


def _minted_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        order = _order_for(session, ev)
        if order is not None and order.status == "completed":
            set_status(session, order, "processing")
            order.first_token_id = None


HANDLERS: tuple[EventHandler, ...] = (
    handler("ListingCreated", _listing_created, _listing_created_revert, contract="PrimarySale"),
    handler("PerkUsed", _perk_used, _perk_used_revert, contract="FanCollection"),
    handler("CollectionCreated", _collection_created, _noop, contract="FanCollectionFactory"),
    handler("Purchased", _minted, _minted_revert, contract="PrimarySale"),
    handler("PaidOffChainMinted", _minted, _minted_revert, contract="PrimarySale"),
    handler("Purchased", _sold, _unsold, contract="PrimarySale"),
    handler("PaidOffChainMinted", _sold, _unsold, contract="PrimarySale"),
)
