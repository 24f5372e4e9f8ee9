"""Demo shop of a town for `make run`: the ambassador card for 5,000 points, 5,000 test yen or
5,000 yen by card, its perk "Village event entry" (3 uses), and a venue verifier account.

The roles (minter, verifier) and the perk were set at deploy (backend/chain/deploy.py, ADR
0008); each listing is created on PrimarySale through the outbox by the `catalogue` role key,
which only a local chain grants (a listing admin picks the lister and the price).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.roles import VERIFIER, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.api import AuditEntry, ContractCall, Sender, Subject, get_vault, outbox_service
from backend.core.db import get_db, utcnow
from backend.core.errors import AppError
from backend.regions.models import Town
from backend.shop.models import Collection, Listing, Perk

log = logging.getLogger(__name__)

VENUE_EMAIL = "venue@sarabetsu.example"
VENUE_PASSWORD = "furusato-demo-venue"  # noqa: S105 - a published demo account
CARD_ONLY_PRICE = 2**256 - 1  # a card listing can never be bought with a token on chain
LISTINGS = (("points", 5000, 200), ("stablecoin", 5000, 150), ("card", 5000, 150))


def load_demo(town: Town) -> None:
    session = get_db().session
    coll = session.scalar(
        select(Collection).where(Collection.town_id == town.id, Collection.slug == "ambassador")
    )
    if coll is None or coll.contract_address is None:
        return
    gw = current_app.extensions["chain"]
    outbox = outbox_service()
    sale = f"towns.{town.slug}.PrimarySale"
    if session.scalar(select(Perk.id).where(Perk.collection_id == coll.id)) is None:
        session.add(
            Perk(
                collection_id=coll.id,
                perk_id=1,
                name_ja="村のイベント入場",
                name_en="Village event entry",
                uses_per_token=3,
            )
        )
    treasury = gw.address_of(f"towns.{town.slug}.TownTreasury")
    start = utcnow() - dt.timedelta(days=1)
    end = utcnow() + dt.timedelta(days=365)
    for kind, price, supply in LISTINGS:
        if session.scalar(
            select(Listing.id).where(Listing.collection_id == coll.id, Listing.payment_kind == kind)
        ):
            continue
        token = gw.address_of(
            f"towns.{town.slug}.RegionPoints" if kind == "points" else "TestYenStablecoin"
        )
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
        onchain_price = CARD_ONLY_PRICE if kind == "card" else price
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
    session.commit()
    _venue_user(town)


def _venue_user(town: Town) -> None:
    session = get_db().session
    user = session.scalar(select(User).where(User.email == VENUE_EMAIL))
    if user is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            user = AccountService(session, lambda: get_vault(app)).signup(
                VENUE_EMAIL, VENUE_PASSWORD, "Sarabetsu venue", "ja", verified=True
            )
        except AppError as exc:
            log.warning("demo venue user not created: %s", exc.message)
            return
    grant_town_role(user, town.id, VERIFIER)
    session.commit()
