"""Demo shop of a town for `make run`: its collections and listings, their perks, and a venue
verifier account.

Each demo town (backend/deploy.py deploys their contracts) sells:
- the ambassador card: 5,000 points, 5,000 yen in the yen stablecoin, or 5,000 yen by card;
  perk "event entry" (3 uses); it votes in the town's card chamber;
- an event ticket for 500 points (perk: one entry);
- an experience for 1,500 points (perk: one visit);
- a donation certificate for 300 points (soulbound: a thank-you, not for resale).

A visitor's welcome points (500, granted when the address is verified: programmes.WELCOME)
buy the ticket or the certificate; the experience and the card need more points (or yen).

The roles (minter, verifier) and the perks were set at deploy (backend/chain/deploy.py, ADR
0008); each listing is created on PrimarySale through the outbox by the `catalogue` role key,
which only a local chain grants (a listing admin picks the lister and the price).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.roles import VERIFIER, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.api import (
    AuditEntry,
    ContractCall,
    Sender,
    Subject,
    YenTokenUnavailable,
    get_vault,
    outbox_service,
)
from backend.core.db import get_db, utcnow
from backend.core.errors import AppError
from backend.regions.models import Town
from backend.shop.models import Collection, Listing, Perk

log = logging.getLogger(__name__)

VENUE_PASSWORD = "furusato-demo-venue"  # noqa: S105 - a published demo account
CARD_ONLY_PRICE = 2**256 - 1  # a card listing can never be bought with a token on chain


@dataclass(frozen=True)
class Item:
    """One demo collection (deployed by backend/deploy.py under the same slug) and its
    listings: (payment kind, price, supply)."""

    slug: str
    category: str
    name_ja: str
    name_en: str
    description_ja: str
    description_en: str
    max_supply: int
    listings: tuple[tuple[str, int, int], ...]
    perk: tuple[str, str, int] | None = None  # perk 1: (name ja, name en, uses per token)


@dataclass(frozen=True)
class DemoShop:
    venue_email: str
    venue_name: str
    items: tuple[Item, ...]


SHOPS = {
    "sarabetsu": DemoShop(
        "venue@sarabetsu.example",
        "Sarabetsu venue",
        (
            Item(
                "ambassador",
                "ambassador_card",
                "更別村アンバサダーカード",
                "Sarabetsu Ambassador Card",
                "村のDAOで1枚につき1票。村のイベントで特典が使えます。",
                "One vote per card in the village DAO, with perks at village events.",
                500,
                (("points", 5000, 200), ("stablecoin", 5000, 150), ("card", 5000, 150)),
                ("村のイベント入場", "Village event entry", 3),
            ),
            Item(
                "ticket",
                "event_ticket",
                "更別村 収穫祭 入場券",
                "Sarabetsu Harvest Festival Ticket",
                "十勝の新じゃがととうもろこしの収穫祭。会場の受付でチケットのQRを見せてください。",
                "The Tokachi harvest festival of new potatoes and sweetcorn. Show the ticket's "
                "QR code at the entrance.",
                300,
                (("points", 500, 300),),
                ("収穫祭 入場", "Festival entry", 1),
            ),
            Item(
                "experience",
                "experience",
                "更別村 農業体験 (じゃがいも掘り)",
                "Sarabetsu Farm Day: potato digging",
                "農家さんと一緒に畑でじゃがいもを掘る半日の体験。掘ったじゃがいもはお持ち帰りできます。",
                "Half a day in the fields digging potatoes with a farmer; take home what you dig.",
                50,
                (("points", 1500, 50),),
                ("農業体験 参加", "Farm day visit", 1),
            ),
            Item(
                "supporter",
                "donation_certificate",
                "更別村 応援証明書",
                "Sarabetsu Supporter Certificate",
                "村を応援してくれた方への感謝の証明書です (譲渡できません)。",
                "A certificate of thanks for supporting the village (not transferable).",
                1000,
                (("points", 300, 1000),),
            ),
        ),
    ),
    "toyako": DemoShop(
        "venue@toyako.example",
        "Lake Toya venue",
        (
            Item(
                "ambassador",
                "ambassador_card",
                "洞爺湖町アンバサダーカード",
                "Lake Toya Ambassador Card",
                "町のDAOで1枚につき1票。町のイベントで特典が使えます。",
                "One vote per card in the town DAO, with perks at town events.",
                500,
                (("points", 5000, 200), ("stablecoin", 5000, 150), ("card", 5000, 150)),
                ("町のイベント入場", "Town event entry", 3),
            ),
            Item(
                "ticket",
                "event_ticket",
                "洞爺湖ロングラン花火大会 観覧券",
                "Lake Toya Long-Run Fireworks Ticket",
                "湖畔の観覧エリアで花火を楽しめます。受付でチケットのQRを見せてください。",
                "A place in the lakeside viewing area for the fireworks. Show the ticket's QR "
                "code at the entrance.",
                300,
                (("points", 500, 300),),
                ("観覧エリア 入場", "Viewing area entry", 1),
            ),
            Item(
                "experience",
                "experience",
                "洞爺湖 カヌー体験",
                "Lake Toya Canoe Experience",
                "ガイドと一緒に洞爺湖をカヌーでめぐる1時間の体験です。",
                "An hour on Lake Toya by canoe with a local guide.",
                50,
                (("points", 1500, 50),),
                ("カヌー体験 参加", "Canoe trip", 1),
            ),
            Item(
                "supporter",
                "donation_certificate",
                "洞爺湖町 応援証明書",
                "Lake Toya Supporter Certificate",
                "町を応援してくれた方への感謝の証明書です (譲渡できません)。",
                "A certificate of thanks for supporting the town (not transferable).",
                1000,
                (("points", 300, 1000),),
            ),
        ),
    ),
}


def load_demo(town: Town) -> None:
    shop = SHOPS.get(town.slug)
    if shop is None:
        return
    for item in shop.items:
        coll = _collection(town, item)
        if coll is not None:
            _listings(town, coll, item)
    get_db().session.commit()
    _venue_user(town, shop)


def _collection(town: Town, item: Item) -> Collection | None:
    """The item's collection row on its deployed contract (None: not deployed here)."""
    session = get_db().session
    try:
        address = current_app.extensions["chain"].address_of(
            f"towns.{town.slug}.collections.{item.slug}"
        )
    except LookupError:
        return None
    points = next((p for k, p, _ in item.listings if k == "points"), None)
    yen = next((p for k, p, _ in item.listings if k != "points"), None)
    coll = session.scalar(
        select(Collection).where(Collection.town_id == town.id, Collection.slug == item.slug)
    )
    if coll is None:
        coll = Collection(
            town_id=town.id,
            slug=item.slug,
            name_ja=item.name_ja,
            name_en=item.name_en,
            description_ja=item.description_ja,
            description_en=item.description_en,
            category=item.category,
            max_supply=item.max_supply,
            price_yen=None if yen is None else Decimal(yen),
            price_points=None if points is None else Decimal(points),
        )
        session.add(coll)
    coll.contract_address = address
    session.flush()
    if item.perk and session.scalar(select(Perk.id).where(Perk.collection_id == coll.id)) is None:
        name_ja, name_en, uses = item.perk
        session.add(
            Perk(
                collection_id=coll.id,
                perk_id=1,
                name_ja=name_ja,
                name_en=name_en,
                uses_per_token=uses,
            )
        )
    return coll


def _listings(town: Town, coll: Collection, item: Item) -> None:
    session = get_db().session
    gw = current_app.extensions["chain"]
    outbox = outbox_service()
    sale = f"towns.{town.slug}.PrimarySale"
    treasury = gw.address_of(f"towns.{town.slug}.TownTreasury")
    start = utcnow() - dt.timedelta(days=1)
    end = utcnow() + dt.timedelta(days=365)
    for kind, price, supply in item.listings:
        if session.scalar(
            select(Listing.id).where(Listing.collection_id == coll.id, Listing.payment_kind == kind)
        ):
            continue
        if kind == "points":
            token, onchain_price = gw.address_of(f"towns.{town.slug}.RegionPoints"), price
        else:
            try:
                yen = gw.yen_token()
            except YenTokenUnavailable:
                log.warning("demo %s listing of %s skipped: no yen token", kind, coll.slug)
                continue
            # a card listing can never be bought with the token on chain
            token = yen.address
            onchain_price = CARD_ONLY_PRICE if kind == "card" else yen.units(price)
        listing = Listing(
            town_id=town.id,
            collection_id=coll.id,
            payment_kind=kind,
            price=Decimal(price),
            supply=supply,
            wallet_cap=5,
            starts_at=start,
            ends_at=end,
        )
        session.add(listing)
        session.flush()
        struct = [
            coll.contract_address,
            0,
            int(start.timestamp()),
            int(end.timestamp()),
            token,
            5,
            supply,
            0,
            treasury,
            False,
            False,
            onchain_price,
        ]
        tx = outbox.enqueue(
            session,
            ContractCall(sale, "createListing", [struct]),
            sender=Sender.role("catalogue", town_id=town.id),
            key=f"demo:{town.slug}:listing:{listing.id}",
            subject=Subject("listing", listing.id),
            audit=AuditEntry(
                actor="demo",
                action="nft.listing",
                subject_type="listing",
                subject_id=str(listing.id),
                amount=price,
                reason=f"demo listing of {coll.slug} for {kind}",
            ),
        )
        listing.outbox_tx_id = tx.id


def _venue_user(town: Town, shop: DemoShop) -> None:
    session = get_db().session
    user = session.scalar(select(User).where(User.email == shop.venue_email))
    if user is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            user = AccountService(session, lambda: get_vault(app)).signup(
                shop.venue_email, VENUE_PASSWORD, shop.venue_name, "ja", verified=True
            )
        except AppError as exc:
            log.warning("demo venue user not created: %s", exc.message)
            return
    grant_town_role(user, town.id, VERIFIER)
    session.commit()
    print(f"demo venue staff ({town.slug}): {shop.venue_email} / {VENUE_PASSWORD}")
