"""Deadlines the chain checks (ERC-2612 permits, ERC-2771 forward requests) start from the
chain's clock, not from this server's: on an anvil moved days ahead with evm_increaseTime, a
points purchase (built-in account) and a test-yen purchase (external wallet) still go through,
and the outbox's own deadline (deadline_at, on this server's clock) is still about an hour away.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.shop.models import Listing, Order
from backend.shop.orders import PERMIT_TTL
from tests.chain_admin import role_address
from tests.shop.shop_helpers import Api, contract, counts, drive, listing_id, mine
from tests.shop.test_orders import _address, _buy, _order, app_deployed
from tests.shop.test_wallet_orders import WALLET, _place, _signed_purchase, _siwe

AHEAD = 3 * 86_400  # three days


def _move_chain_clock_ahead(w3, seconds: int = AHEAD) -> int:
    """Move anvil's clock `seconds` ahead of the wall clock and mine a block there; returns
    that block's timestamp. (The w3 fixture's snapshot puts the clock back after the test.)

    Set from the wall clock, not moved by evm_increaseTime, so that the jump does not depend
    on where the chain's clock stood: before the w3 fixture put the clock back to the wall
    after each revert (tests/conftest.py `_clock_back_to_the_wall`), it lagged by minutes in
    long runs and the jump landed short. Later blocks follow from the set time."""
    latest = int(w3.eth.get_block("latest")["timestamp"])
    target = max(int(dt.datetime.now(dt.UTC).timestamp()) + seconds, latest + 1)
    w3.provider.make_request("evm_setNextBlockTimestamp", [target])
    mine(w3)
    stamp = int(w3.eth.get_block("latest")["timestamp"])
    assert stamp - dt.datetime.now(dt.UTC).timestamp() > seconds - 600
    return stamp


def _outbox_row(app, public_id: str) -> OutboxTx:
    with app.app_context():
        s = get_db().session
        order = s.scalar(sa.select(Order).where(Order.public_id == public_id))
        row = s.get(OutboxTx, order.outbox_tx_id)
        s.expunge(row)
        return row


def _about_an_hour_from_now(at: dt.datetime) -> bool:
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    left = (at - dt.datetime.now(dt.UTC)).total_seconds()
    return PERMIT_TTL - 600 < left <= PERMIT_TTL + 60


def test_chain_now_reads_the_next_blocks_time_even_before_it_is_mined(app, w3):
    before = int(w3.eth.get_block("latest")["timestamp"])
    w3.provider.make_request("evm_increaseTime", [AHEAD])
    with app.app_context():
        now = app.extensions["chain"].chain_now()
    assert now >= before + AHEAD
    mine(w3)
    assert int(w3.eth.get_block("latest")["timestamp"]) >= now


def test_points_purchase_works_on_a_chain_whose_clock_is_days_ahead(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    me = _address(app, "fan@example.com")
    points = contract(w3, app_deployed(app), "towns.sarabetsu.RegionPoints")
    points.functions.issue(me, 6_000, 2, "test").transact({"from": role_address("issuer")})
    chain_now = _move_chain_clock_ahead(w3)

    resp = _buy(api, listing_id(app, "points"))
    assert resp.status_code == 201, resp.get_json()
    order = resp.get_json()["order"]
    row = _outbox_row(app, order["id"])
    # The signed request's deadline is an hour of the chain's clock; the relayer's cut-off is
    # the same hour on this server's clock.
    assert chain_now < row.forward_request["deadline"] <= chain_now + PERMIT_TTL + 600
    assert _about_an_hour_from_now(row.deadline_at)
    drive(app, w3)
    assert _order(app, order["id"]).status == "completed"
    assert points.functions.balanceOf(me).call() == 1_000


def test_wallet_purchase_works_on_a_chain_whose_clock_is_days_ahead(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    _siwe(api)
    assert api.post("/api/shop/faucet").status_code == 202
    drive(app, w3)
    chain_now = _move_chain_clock_ahead(w3)
    yen_listing = listing_id(app, "stablecoin")

    permit, request, step2 = _signed_purchase(api, yen_listing)
    assert step2.status_code == 200, step2.get_json()
    assert chain_now < permit["deadline"] <= chain_now + PERMIT_TTL + 600
    assert chain_now < request["deadline"] <= chain_now + PERMIT_TTL + 600
    resp = _place(api, yen_listing, permit, request)
    assert resp.status_code == 201, resp.get_json()
    order = resp.get_json()["order"]
    assert _about_an_hour_from_now(_outbox_row(app, order["id"]).deadline_at)
    drive(app, w3)
    assert _order(app, order["id"]).status == "completed"
    yen = contract(w3, app_deployed(app), "TestYenStablecoin")
    assert yen.functions.balanceOf(WALLET.address).call() == 5_000


def test_a_permit_about_to_expire_on_the_chains_clock_is_refused(shop_app, w3):
    """The staleness check reads the chain's clock too: a permit prepared, then the chain
    moved past its deadline, is refused before anything is queued."""
    app = shop_app
    api = Api(app.test_client())
    _siwe(api)
    assert api.post("/api/shop/faucet").status_code == 202
    drive(app, w3)
    yen_listing = listing_id(app, "stablecoin")
    body = {"listing_id": yen_listing, "quantity": 1}
    prepared = api.post("/api/shop/wallet-orders/permit", body).get_json()
    _move_chain_clock_ahead(w3, PERMIT_TTL)
    signature = WALLET.sign_typed_data(full_message=prepared["typed_data"]).signature.to_0x_hex()
    permit = {**prepared["permit"], "signature": signature}
    resp = api.post("/api/shop/wallet-orders/forward-request", {**body, "permit": permit})
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "stale_signature"


def test_a_sale_window_over_by_the_chains_clock_is_refused_at_once(shop_app, w3):
    """PrimarySale checks the window against block.timestamp: so does the shop, before anything
    is signed or queued (a buy the chain would refuse is not accepted)."""
    app = shop_app
    lid = listing_id(app, "points")
    with app.app_context():
        s = get_db().session
        s.get(Listing, lid).ends_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        s.commit()
    api = Api(app.test_client())
    api.signup("fan@example.com")
    me = _address(app, "fan@example.com")
    points = contract(w3, app_deployed(app), "towns.sarabetsu.RegionPoints")
    points.functions.issue(me, 6_000, 2, "test").transact({"from": role_address("issuer")})
    _move_chain_clock_ahead(w3)
    before = counts(app)
    resp = _buy(api, lid)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "not_on_sale"
    assert counts(app) == before
    page = api.get("/towns/sarabetsu", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Not on sale now." in page
