"""The collection a town is onboarded with (backend/onboarding): its chain spec's data and the
shop's row for it, so the new town's shop page lists it."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.regions.models import Town
from backend.shop.models import Collection

SLUG = "ambassador"
CATEGORY = "ambassador_card"
MAX_SUPPLY = 500
PRICE = 5000  # yen, and points


def register_first_collection(
    session: Session, town: Town, contract_address: str, *, name_ja: str, name_en: str
) -> Collection:
    """The shop's row of a town's first collection, an ambassador card that votes (its
    contract already deployed); the caller commits. Idempotent per town."""
    coll = session.scalar(
        select(Collection).where(Collection.town_id == town.id, Collection.slug == SLUG)
    )
    if coll is None:
        coll = Collection(
            town_id=town.id,
            slug=SLUG,
            name_ja=f"{name_ja}アンバサダーカード",
            name_en=f"{name_en} Ambassador Card",
            description_ja="町のDAOで1枚につき1票。町のイベントで特典が使えます。",
            description_en="One vote per card in the town's DAO, with perks at town events.",
            category=CATEGORY,
            max_supply=MAX_SUPPLY,
            price_yen=Decimal(PRICE),
            price_points=Decimal(PRICE),
        )
        session.add(coll)
    coll.contract_address = contract_address
    session.flush()
    return coll
