"""Indexer handlers of the shop: listings created, perk uses, and factory-made collections."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.chain.indexer import ChainEvent, register_handler, watch_contract
from backend.chain.outbox_models import OutboxTx
from backend.nfts.models import CheckIn, Listing


def outbox_tx_for(session: Session, ev: ChainEvent) -> OutboxTx | None:
    """The outbox row whose transaction emitted `ev` (its latest attempt's hash)."""
    return session.scalar(
        select(OutboxTx).where(func.lower(OutboxTx.tx_hash) == ev.tx_hash.lower())
    )


def _listing_created(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        tx = outbox_tx_for(session, ev)
        if tx is None:
            continue
        listing = session.scalar(select(Listing).where(Listing.outbox_tx_id == tx.id))
        if listing is not None and listing.chain_listing_id is None:
            listing.chain_listing_id = int(ev.args["listingId"])


def _listing_created_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        listing = session.scalar(
            select(Listing).where(Listing.chain_listing_id == int(ev.args["listingId"]))
        )
        if listing is not None:
            listing.chain_listing_id = None


def _perk_used(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        tx = outbox_tx_for(session, ev)
        if tx is None:
            continue
        row = session.scalar(select(CheckIn).where(CheckIn.outbox_tx_id == tx.id))
        if row is not None:
            row.status = "done"


def _perk_used_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        tx = outbox_tx_for(session, ev)
        row = tx and session.scalar(select(CheckIn).where(CheckIn.outbox_tx_id == tx.id))
        if row is not None:
            row.status = "processing"


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


def _noop(session: Session, events: Sequence[ChainEvent]) -> None:
    return None


register_handler(
    "ListingCreated", _listing_created, _listing_created_revert, contract="PrimarySale"
)
register_handler("PerkUsed", _perk_used, _perk_used_revert, contract="FanCollection")
register_handler("CollectionCreated", _collection_created, _noop, contract="FanCollectionFactory")
