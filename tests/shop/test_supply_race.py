"""Issue 16 §3: the last units of a listing bought by many at once, on PostgreSQL AND SQLite
(backend/shop/supply.py). Exactly what is left is sold: those buyers get 201 and one queued
buy each, every other buyer is told 409 "sold out" in the same answer, nobody gets a 5xx, and
the chain mints exactly that many. A declined card payment gives its unit back, and the next
buyer gets it.

"The last units": the listing's stock is set as if the rest of its 200 were held by orders
already (the count the guard reads), so the race is over its last few.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import Address, User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.shop.models import Listing, ListingStock, Order
from backend.shop.services import payment_provider
from scripts.demo_data import load_demo_data
from tests.chain_admin import role_address
from tests.concurrency import at_once
from tests.shop.shop_helpers import Api, contract, drive, listing_id, mine

BUYERS = 8
LEFT = 3


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, w3: Web3, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    app.extensions["limiter"].enabled = False  # the database's guard must hold by itself
    load_demo_data(app)
    drive(app, w3)
    return app


def _leave(app: Flask, listing: int, left: int) -> int:
    """Set the listing's stock as if all but `left` of its supply were held; its supply."""
    with app.app_context():
        s = get_db().session
        supply = s.get(Listing, listing).supply
        s.merge(ListingStock(listing_id=listing, reserved=supply - left))
        s.commit()
        return int(supply)


def _stock(app: Flask, listing: int) -> int:
    with app.app_context():
        s = get_db().session
        value = s.scalar(sa.select(ListingStock.reserved).where(ListingStock.listing_id == listing))
        s.rollback()
        return int(value)


def _buyers(app: Flask, n: int) -> list[Api]:
    apis = []
    for i in range(n):
        api = Api(app.test_client())
        api.signup(f"rush{i}@example.com")
        apis.append(api)
    return apis


def _fund(app: Flask, w3: Web3, points: int) -> None:
    with app.app_context():
        addresses = list(get_db().session.scalars(sa.select(Address.address).join(User)))
    token = contract(w3, app.extensions["chain"].deployments(), "towns.sarabetsu.RegionPoints")
    token.functions.issueBatch(addresses, [points] * len(addresses), 2, "rush").transact(
        {"from": role_address("issuer")}
    )
    mine(w3)


def _buy(api: Api, listing: int, key: str) -> Any:
    return api.post(
        "/api/shop/orders", {"listing_id": listing, "quantity": 1, "idempotency_key": key}
    )


def _orders(app: Flask, listing: int) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        rows = s.execute(
            sa.select(Order.status, sa.func.count())
            .where(Order.listing_id == listing)
            .group_by(Order.status)
        ).all()
        s.rollback()
        return {status: n for status, n in rows}


def test_the_last_units_bought_by_many_at_once_sell_exactly_once(app, w3):
    lid = listing_id(app, "points")
    buyers = _buyers(app, BUYERS)
    _fund(app, w3, 5000)
    supply = _leave(app, lid, LEFT)
    answers = at_once(
        [lambda api=api, i=i: _buy(api, lid, f"rush-order-{i}") for i, api in enumerate(buyers)]
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * LEFT + [409] * (BUYERS - LEFT), [a.get_json() for a in answers]
    for a in answers:
        if a.status_code == 409:
            assert a.get_json()["error"]["code"] == "sold_out", a.get_json()
        else:
            assert a.get_json()["order"]["status"] == "processing"
    assert _stock(app, lid) == supply
    assert _orders(app, lid) == {"processing": LEFT}
    with app.app_context():
        s = get_db().session
        buys = s.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxTx)
            .where(OutboxTx.function == "buyWithPermit")
        )
    assert buys == LEFT
    # One more buyer later is told at once, and nothing is written for them.
    late = _buy(buyers[0], lid, "rush-order-late")
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "sold_out"
    drive(app, w3)
    assert _orders(app, lid) == {"completed": LEFT}
    assert _stock(app, lid) == supply
    with app.app_context():
        chain_id = get_db().session.get(Listing, lid).chain_listing_id
        sale = contract(w3, app.extensions["chain"].deployments(), "towns.sarabetsu.PrimarySale")
    assert sale.functions.listing(chain_id).call()[7] == LEFT  # sold on chain


def test_a_declined_card_payment_gives_its_unit_back(app):
    lid = listing_id(app, "card")
    first, second = _buyers(app, 2)
    supply = _leave(app, lid, 1)
    one, other = at_once(
        [lambda: _buy(first, lid, "card-order-1"), lambda: _buy(second, lid, "card-order-2")]
    )
    assert sorted((one.status_code, other.status_code)) == [201, 409]
    winner, loser = (first, second) if one.status_code == 201 else (second, first)
    order = (one if one.status_code == 201 else other).get_json()["order"]
    assert order["status"] == "pending_payment"
    assert _stock(app, lid) == supply
    with app.app_context():
        payload, headers = payment_provider().signed_event(order["id"], "declined", 5000)
    assert winner.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
    assert _orders(app, lid) == {"declined": 1}
    assert _stock(app, lid) == supply - 1
    again = _buy(loser, lid, "card-order-3")
    assert again.status_code == 201, again.get_json()
    assert _stock(app, lid) == supply


def test_one_buyers_orders_at_once_hold_no_more_than_the_wallet_cap(app):
    """One person's ten tabs at once, each for the wallet cap under its own request key: one
    order is placed and the nine others are told 409 "wallet cap". Each checked the cap before
    any had committed, so all ten were placed: one person held ten times the cap of a limited
    edition (sold out for everyone else) and, paying them all, was charged ten times for mints
    the chain then refused."""
    from backend.shop.services import order_service
    from tests.concurrency import n_at_once

    lid = listing_id(app, "card")
    (buyer,) = _buyers(app, 1)
    user_id = buyer.get("/api/accounts/me").get_json()["user"]["id"]
    with app.app_context():
        cap = get_db().session.get(Listing, lid).wallet_cap
    before = _stock(app, lid) if _orders(app, lid) else 0

    def place(i: int) -> str:
        user = get_db().session.get(User, user_id)
        return order_service().place(user, lid, cap, f"tab-order-{i}").order.public_id

    answers = n_at_once(app, 10, place)
    placed = [a for a in answers if isinstance(a, str)]
    refused = [a for a in answers if not isinstance(a, str)]
    assert len(placed) == 1, answers
    assert all(getattr(r, "code", "") == "wallet_cap_exceeded" for r in refused), refused
    assert _orders(app, lid) == {"pending_payment": 1}
    assert _stock(app, lid) == before + cap
