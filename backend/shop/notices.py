"""What the shop tells the notifications domain: the names its holder reads when a use of a
ticket (a perk of a card) is marked on chain (backend/notifications/handlers.py asks, in the
indexer's transaction)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.regions.models import Town
from backend.shop.models import Collection, Perk


@dataclass(frozen=True)
class TicketNames:
    collection_ja: str
    collection_en: str
    perk_ja: str
    perk_en: str
    town_ja: str
    town_en: str


def ticket_names(session: Session, contract_address: str, perk_id: int) -> TicketNames | None:
    """The collection at `contract_address` and its perk `perk_id` as the shop lists them (None
    for a collection the shop does not list). A perk without a row is named by the collection."""
    row = session.execute(
        select(Collection, Town)
        .join(Town, Town.id == Collection.town_id)
        .where(Collection.contract_address == contract_address)
    ).first()
    if row is None:
        return None
    collection, town = row
    perk = session.scalar(
        select(Perk).where(Perk.collection_id == collection.id, Perk.perk_id == perk_id)
    )
    return TicketNames(
        collection.name_ja,
        collection.name_en,
        perk.name_ja if perk is not None else "",
        perk.name_en if perk is not None else "",
        town.name_ja,
        town.name_en,
    )
