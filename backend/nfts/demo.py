"""Demo shop of a town for `make run`: the ambassador card for 5,000 points, 5,000 test yen or
5,000 yen by card, its perk "Village event entry" (3 uses), and a venue verifier account.

Chain setup goes through the outbox as the "admin" role key (idempotent keys): the admin may
mint paid-off-chain orders (PrimarySale MINTER_ROLE) and mark perk uses (VERIFIER_ROLE), the
perk is set on the collection, and each listing is created on PrimarySale.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from backend.chain.outbox import AuditEntry, outbox_service
from backend.core.db import get_db, utcnow
from backend.nfts.models import Collection, Listing, Perk
from backend.regions.models import Town

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
    admin = outbox.keys.role("admin")
    sale = f"towns.{town.slug}.PrimarySale"

    def admin_call(key: str, contract: str, function: str, args: list, artifact: str | None = None):
        return outbox.enqueue_call(
            session,
            idempotency_key=f"demo:{town.slug}:{key}",
            sender_kind="admin",
            contract=contract,
            artifact_name=artifact,
            function=function,
            args=args,
            town_id=town.id,
        )

    minter = gw.read(sale, "MINTER_ROLE")
    verifier = gw.read(coll.contract_address, "VERIFIER_ROLE", artifact_name="FanCollection")
    admin_call("sale-minter", sale, "grantRole", ["0x" + bytes(minter).hex(), admin])
    admin_call(
        "ambassador-verifier",
        coll.contract_address,
        "grantRole",
        ["0x" + bytes(verifier).hex(), admin],
        "FanCollection",
    )
    admin_call("ambassador-perk-1", coll.contract_address, "setPerk", [1, 3, 0], "FanCollection")
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
        tx = outbox.enqueue_call(
            session,
            idempotency_key=f"demo:{town.slug}:listing:{listing.id}",
            sender_kind="admin",
            contract=sale,
            function="createListing",
            args=[struct],
            town_id=town.id,
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
    from backend.accounts.models import User
    from backend.accounts.roles import VERIFIER, grant_town_role
    from backend.accounts.services import AccountService
    from backend.chain.custody import get_vault
    from backend.core.errors import AppError

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
