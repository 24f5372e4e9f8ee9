"""Issue 16 §1 "Pages and API reads from the projection, never from the node": with real
activity made on anvil first (a card bought, a payment at a shop, the DAO's proposal open), the
shop page, the listings JSON, /points, "my collection", a proposal page and the merchant's sales
each render with zero JSON-RPC calls, counted at the wire by a proxy between the app and the node
(tests/rpc_counter.py), on PostgreSQL and SQLite. What they show is what the chain says (read
directly from anvil by the test), so a page that stopped asking the node still tells the truth.
Calls are counted, not timed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.dao.models import DaoProposal
from backend.dao.tasks import record_proposal_facts
from backend.merchants.demo import MERCHANT_EMAIL, MERCHANT_PASSWORD, SHOP_EN
from backend.merchants.models import Merchant
from backend.points.demo import RESIDENT_EMAIL, RESIDENT_PASSWORD
from backend.regions.models import Town
from scripts.demo_data import load_demo_data
from tests.rpc_counter import RpcCounter
from tests.shop.shop_helpers import Api, bought_card, contract, drive, listing_id

EN = {"Accept-Language": "en"}
JA = {"Accept-Language": "ja"}


def _login(app: Flask, email: str, password: str) -> Api:
    api = Api(app.test_client())
    resp = api.post("/api/auth/login", {"email": email, "password": password})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return api


def _ids(app: Flask) -> tuple[int, int]:
    with app.app_context():
        s = get_db().session
        merchant = s.scalar(sa.select(Merchant.id).where(Merchant.name_en == SHOP_EN))
        proposal = s.scalar(
            sa.select(DaoProposal.id)
            .join(Town, Town.id == DaoProposal.town_id)
            .where(Town.slug == "sarabetsu")
        )
        return int(merchant), int(proposal)


def _address(app: Flask, email: str) -> str:
    from backend.accounts.models import Address, User

    with app.app_context():
        s = get_db().session
        return str(
            s.scalar(
                sa.select(Address.address)
                .join(User, User.id == Address.user_id)
                .where(User.email == email)
            )
        )


@pytest.fixture
def world(
    any_db_url: str,
    make_app: Callable[..., Flask],
    deployed: Any,
    w3: Web3,
    rpc_counter: RpcCounter,
) -> Any:
    """The demo towns, on `any_db_url`, through the counting proxy; then a fan buys Sarabetsu's
    ambassador card (card payment), the demo resident pays the demo shop 120 points by QR, the
    chain moves past the festival proposal's snapshot, and the worker indexes everything and
    records the proposal's facts (what beat does)."""
    app = make_app(database_url=any_db_url, rpc_url=rpc_counter.url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    fan, token = bought_card(app, w3)
    merchant_id, proposal_id = _ids(app)
    clerk = _login(app, MERCHANT_EMAIL, MERCHANT_PASSWORD)
    resident = _login(app, RESIDENT_EMAIL, RESIDENT_PASSWORD)
    charge = clerk.post(
        f"/api/merchants/{merchant_id}/charges",
        {"amount": 120, "idempotency_key": "perf-page-sale-1"},
    )
    assert charge.status_code == 201, charge.get_data(as_text=True)
    paid = resident.post(f"/api/pay/{charge.get_json()['charge']['code']}")
    assert paid.status_code == 200, paid.get_data(as_text=True)
    w3.provider.make_request("anvil_mine", ["0x3"])  # past the proposal's snapshot
    drive(app, w3)
    with app.app_context():
        record_proposal_facts()
    return {
        "app": app,
        "fan": fan,
        "token": token,
        "clerk": clerk,
        "resident": resident,
        "merchant_id": merchant_id,
        "proposal_id": proposal_id,
    }


def _no_rpc(counter: RpcCounter, api: Api, url: str, headers: dict[str, str] = EN) -> Any:
    with counter.counting() as calls:
        resp = api.get(url, headers=headers)
    assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:500])
    assert calls == [], f"{url} asked the node: {calls}"
    return resp


def test_pages_read_the_projection_not_the_node(world, rpc_counter, w3, deployed):
    # The proxy sees what the app sends: chain_now is one batch of two calls.
    with world["app"].app_context(), rpc_counter.counting() as calls:
        world["app"].extensions["chain"].chain_now()
    assert calls == ["eth_getBlockByNumber", "eth_getBlockByNumber"]
    _shop_page_and_listings(world, rpc_counter, w3, deployed)
    _points_pages(world, rpc_counter, w3, deployed)
    _my_collection(world, rpc_counter, w3, deployed)
    _proposal_pages(world, rpc_counter, w3, deployed)
    _merchant_sales(world, rpc_counter)


def _shop_page_and_listings(world, rpc_counter, w3, deployed):
    app, fan = world["app"], world["fan"]
    anon = Api(app.test_client())
    _no_rpc(rpc_counter, anon, "/towns/sarabetsu")
    page = _no_rpc(rpc_counter, fan, "/towns/sarabetsu", JA).get_data(as_text=True)
    assert "更別村" in page
    body = _no_rpc(rpc_counter, anon, "/api/shop/towns/sarabetsu/listings").get_json()
    _no_rpc(rpc_counter, fan, "/api/shop/towns/sarabetsu/listings")
    sale = contract(w3, deployed, "towns.sarabetsu.PrimarySale")
    shown = {li["id"]: li for c in body["collections"] for li in c["listings"]}
    card = shown[listing_id(app, "card")]
    assert card["open"] is True
    for li in shown.values():
        on_chain = sale.functions.listing(li["chain_listing_id"]).call()
        assert li["remaining"] == on_chain[6] - on_chain[7], li  # supply - sold
    assert sale.functions.listing(card["chain_listing_id"]).call()[7] == 1  # the fan's card


def _points_pages(world, rpc_counter, w3, deployed):
    resident = world["resident"]
    html = _no_rpc(rpc_counter, resident, "/points", JA).get_data(as_text=True)
    assert re.search(r'data-testid="history-shop">更別村農産物直売所 で支払い<', html)
    body = _no_rpc(rpc_counter, resident, "/api/points").get_json()
    points = contract(w3, deployed, "towns.sarabetsu.RegionPoints")
    balance = points.functions.balanceOf(_address(world["app"], RESIDENT_EMAIL)).call()
    (town,) = [t for t in body["towns"] if t["town"] == "sarabetsu"]
    assert town["confirmed"] == balance > 0
    _no_rpc(rpc_counter, world["fan"], "/points")


def _my_collection(world, rpc_counter, w3, deployed):
    fan, token = world["fan"], world["token"]
    html = _no_rpc(rpc_counter, fan, "/my/collection", JA).get_data(as_text=True)
    assert "FT1." in html
    (mine,) = _no_rpc(rpc_counter, fan, "/api/shop/my/collection").get_json()["tokens"]
    cards = contract(w3, deployed, "towns.sarabetsu.collections.ambassador", "FanCollection")
    for perk in mine["perks"]:
        left = cards.functions.perkUsesLeft(token["token_id"], perk["perk_id"]).call()
        assert perk["uses_left"] == left > 0


def _proposal_pages(world, rpc_counter, w3, deployed):
    app, fan, pid = world["app"], world["fan"], world["proposal_id"]
    url = f"/towns/sarabetsu/dao/proposals/{pid}"
    html = _no_rpc(rpc_counter, Api(app.test_client()), url).get_data(as_text=True)
    assert 'data-state="active"' in html
    _no_rpc(rpc_counter, fan, url, JA)
    _no_rpc(rpc_counter, fan, "/towns/sarabetsu/dao")
    with app.app_context():
        p = get_db().session.get(DaoProposal, pid)
        gov = contract(w3, deployed, "towns.sarabetsu.CardChamber", "TownGovernor")
        assert gov.functions.state(int(p.proposal_id)).call() == 1  # active on chain too


def _merchant_sales(world, rpc_counter):
    clerk, merchant_id = world["clerk"], world["merchant_id"]
    html = _no_rpc(rpc_counter, clerk, f"/merchants/{merchant_id}", JA).get_data(as_text=True)
    assert len(re.findall(r'<li data-testid="sale">', html)) == 1
    body = _no_rpc(rpc_counter, clerk, f"/api/merchants/{merchant_id}/sales").get_json()
    assert [int(s["amount"]) for s in body["sales"]] == [120]
