"""The projections pages read instead of the node (issue 16 §1) follow the chain through a reorg:
a card bought (the listing's sold count, the buyer's votes) and a perk used on it (the token's
uses) are undone when the blocks that held them are dropped, and the pages and the chain agree
again, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.chain import api as chain
from backend.chain.indexer_tasks import index_blocks
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.shop.models import Listing, PerkUse
from backend.shop.services import shop_service
from scripts.demo_data import load_demo_data
from tests.chain._reorg_helpers import revert, snapshot
from tests.shop.shop_helpers import VENUE, Api, bought_card, contract, drive, listing_id

AMBASSADOR = "towns.sarabetsu.collections.ambassador"


def _facts(app: Flask, w3: Web3, deployed: Any, holder: str, token_id: int) -> dict[str, Any]:
    """What the projection says next to what the chain says."""
    sale = contract(w3, deployed, "towns.sarabetsu.PrimarySale")
    cards = contract(w3, deployed, AMBASSADOR, "FanCollection")
    lid = listing_id(app, "card")
    with app.app_context():
        s = get_db().session
        listing = s.get(Listing, lid)
        used = s.scalar(
            sa.select(PerkUse.used).where(
                PerkUse.contract_address == cards.address, PerkUse.token_id == token_id
            )
        )
        votes = chain.votes_of(s, deployed.chain_id, cards.address, holder)
        sold = int(listing.sold)
        chain_listing = int(listing.chain_listing_id)
    return {
        "sold": (sold, sale.functions.listing(chain_listing).call()[7]),
        "votes": (votes, cards.functions.getVotes(holder).call()),
        "uses_left": (3 - int(used or 0), cards.functions.perkUsesLeft(token_id, 1).call()),
    }


def _index(app: Flask) -> None:
    with app.app_context():
        index_blocks()


def test_sold_counts_votes_and_perk_uses_are_undone_by_a_reorg(
    any_db_url: str, make_app: Callable[..., Flask], deployed: Any, w3: Web3
) -> None:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    before = snapshot(w3)
    fan, token = bought_card(app, w3)
    holder, token_id = token["holder"], int(token["token_id"])
    venue = Api(app.test_client())
    login = venue.post("/api/auth/login", {"email": VENUE[0], "password": VENUE[1]})
    assert login.status_code == 200
    used = venue.post(
        "/api/shop/towns/sarabetsu/checkin",
        {"code": token["ticket_code"], "perk_id": 1, "idempotency_key": "reorg-use-1"},
    )
    assert used.status_code == 201, used.get_data(as_text=True)
    drive(app, w3)
    facts = _facts(app, w3, deployed, holder, token_id)
    assert facts == {"sold": (1, 1), "votes": (1, 1), "uses_left": (2, 2)}
    assert fan.get("/api/shop/my/collection").get_json()["tokens"][0]["perks"][0]["uses_left"] == 2

    revert(w3, before)  # the purchase and the check-in are gone from the chain
    w3.provider.make_request("anvil_mine", ["0x2"])
    _index(app)
    assert _facts(app, w3, deployed, holder, token_id) == {
        "sold": (0, 0),
        "votes": (0, 0),
        "uses_left": (3, 3),
    }
    listings = Api(app.test_client()).get("/api/shop/towns/sarabetsu/listings").get_json()
    card = next(
        li
        for c in listings["collections"]
        for li in c["listings"]
        if li["id"] == listing_id(app, "card")
    )
    with app.app_context():
        listing = get_db().session.get(Listing, card["id"])
        # The lost branch's order is processing again (it will be minted again): it counts.
        pending = shop_service().pending_quantity(listing)
        assert card["remaining"] == listing.supply - pending and pending == 1
