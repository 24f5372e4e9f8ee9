"""Orders: card (test provider) with webhooks, points and test yen (permit + buy, relayed),
bad input that changes nothing, mint failure -> retry -> refund."""

from __future__ import annotations

import sqlalchemy as sa

from backend.accounts.models import Address, User
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.shop.models import Listing, Order
from backend.shop.services import payment_provider
from tests.chain_admin import role_address
from tests.concurrency import at_once
from tests.factories import ListingFactory
from tests.shop.shop_helpers import Api, contract, counts, drive, listing_id, mine

SALE = "towns.sarabetsu.PrimarySale"


def _address(app, email: str) -> str:
    with app.app_context():
        return get_db().session.scalar(
            sa.select(Address.address).join(User).where(User.email == email)
        )


def _order(app, public_id: str) -> Order:
    with app.app_context():
        s = get_db().session
        o = s.scalar(sa.select(Order).where(Order.public_id == public_id))
        s.expunge(o)
        return o


def _webhook(app, api: Api, public_id: str, kind: str = "paid", amount: int = 5000):
    with app.app_context():
        payload, headers = payment_provider().signed_event(public_id, kind, amount)
    return api.client.post("/api/payments/webhooks/test", data=payload, headers=headers)


def _buy(api: Api, listing: int, quantity: object = 1, key: str = "key-00000001"):
    return api.post(
        "/api/shop/orders", {"listing_id": listing, "quantity": quantity, "idempotency_key": key}
    )


def test_card_order_is_minted_once_for_a_webhook_delivered_twice(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    resp = _buy(api, listing_id(app, "card"))
    assert resp.status_code == 201, resp.get_json()
    order = resp.get_json()["order"]
    assert order["status"] == "pending_payment"
    assert resp.get_json()["redirect_url"] == f"/shop/test-checkout/{order['id']}"
    assert _webhook(app, api, order["id"]).get_json() == {"result": "processed"}
    before = counts(app)
    assert _webhook(app, api, order["id"]).get_json() == {"result": "duplicate"}
    assert counts(app) == before
    assert api.get(f"/api/shop/orders/{order['id']}").get_json()["order"]["status"] == "processing"
    drive(app, w3)
    assert api.get(f"/api/shop/orders/{order['id']}").get_json()["order"]["status"] == "completed"
    tokens = api.get("/api/shop/my/collection").get_json()["tokens"]
    assert [t["token_id"] for t in tokens] == [1]
    assert tokens[0]["perks"][0]["uses_left"] == 3 and tokens[0]["ticket_code"].startswith("FT1.")
    with app.app_context():
        audits = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.subject_id == order["id"]))
            .all()
        )
    assert [a.action for a in audits] == ["nft.mint"]
    meta = api.get("/meta/sarabetsu/ambassador/1").get_json()
    assert meta["name"] == "Sarabetsu Ambassador Card #1"
    assert meta["image"].endswith("/meta/sarabetsu/ambassador/image.svg")
    traits = {a["trait_type"]: a["value"] for a in meta["attributes"]}
    assert traits["Category"] == "Ambassador Card" and "Village event entry" in traits["Perk"]
    assert api.get("/meta/sarabetsu/ambassador/2").status_code == 404
    assert api.get("/meta/sarabetsu/ambassador/image.svg").mimetype == "image/svg+xml"


def test_webhook_with_a_bad_signature_changes_nothing(shop_app):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    order = _buy(api, listing_id(app, "card")).get_json()["order"]
    before = counts(app)
    with app.app_context():
        payload, _ = payment_provider().signed_event(order["id"], "paid", 5000)
    resp = api.client.post(
        "/api/payments/webhooks/test", data=payload, headers={"X-Test-Signature": "00" * 32}
    )
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_signature"
    assert counts(app) == before
    assert _order(app, order["id"]).status == "pending_payment"


def test_declined_card_payment_mints_nothing(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    order = _buy(api, listing_id(app, "card")).get_json()["order"]
    _webhook(app, api, order["id"], "declined")
    drive(app, w3)
    assert _order(app, order["id"]).status == "declined"
    assert api.get("/api/shop/my/collection").get_json()["tokens"] == []


def test_a_mint_that_keeps_failing_is_retried_then_refunded_and_the_user_is_told(
    shop_app, w3, anvil
):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    lid = listing_id(app, "card")
    order = _buy(api, lid).get_json()["order"]
    with app.app_context():
        chain_id = get_db().session.get(Listing, lid).chain_listing_id
    sale = contract(w3, app_deployed(app), SALE)
    sale.functions.setListingPaused(chain_id, True).transact({"from": role_address("catalogue")})
    mine(w3)
    _webhook(app, api, order["id"])
    for _ in range(4):
        drive(app, w3)
    o = _order(app, order["id"])
    assert o.status == "refunded" and o.mint_attempts == 3 and o.refund_ref
    assert "PrimarySaleListingPaused" in (o.error or "")
    with app.app_context():
        assert payment_provider().refunds == [f"pay_test_{order['id']}"]
        actions = (
            get_db()
            .session.scalars(sa.select(AuditLog.action).where(AuditLog.subject_id == order["id"]))
            .all()
        )
    assert sorted(actions) == ["nft.mint", "nft.mint", "nft.mint", "payment.refund"]
    html = api.get("/my/collection").get_data(as_text=True)
    assert "refunded" in html or "返金" in html


def app_deployed(app):
    with app.app_context():
        return app.extensions["chain"].deployments()


def test_points_purchase_is_relayed_with_a_permit_and_shows_in_my_collection(shop_app, w3, anvil):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    me = _address(app, "fan@example.com")
    deployed = app_deployed(app)
    points = contract(w3, deployed, "towns.sarabetsu.RegionPoints")
    points.functions.issue(me, 12_000, 2, "test").transact({"from": role_address("issuer")})
    mine(w3)
    resp = _buy(api, listing_id(app, "points"), 2)
    assert resp.status_code == 201, resp.get_json()
    order = resp.get_json()["order"]
    assert order["status"] == "processing" and order["amount"] == 10_000
    # Points promised to a buy not yet on chain cannot be spent twice.
    again = _buy(api, listing_id(app, "points"), 1, key="key-00000002")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "insufficient_balance"
    drive(app, w3)
    assert _order(app, order["id"]).status == "completed"
    assert points.functions.balanceOf(me).call() == 2_000
    assert w3.eth.get_balance(me) == 0  # gasless
    tokens = api.get("/api/shop/my/collection").get_json()["tokens"]
    assert [t["token_id"] for t in tokens] == [1, 2]


def test_test_yen_faucet_then_stablecoin_purchase(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    assert api.post("/api/shop/faucet").status_code == 202
    drive(app, w3)
    resp = _buy(api, listing_id(app, "stablecoin"))
    assert resp.status_code == 201, resp.get_json()
    drive(app, w3)
    assert _order(app, resp.get_json()["order"]["id"]).status == "completed"
    yen = contract(w3, app_deployed(app), "TestYenStablecoin")
    assert yen.functions.balanceOf(_address(app, "fan@example.com")).call() == 5_000


def test_bad_orders_are_refused_with_a_clear_message_and_change_nothing(shop_app):
    app = shop_app
    api = Api(app.test_client())
    assert _buy(api, listing_id(app, "card")).status_code == 401
    api.signup("fan@example.com")
    card = listing_id(app, "card")
    before = counts(app)
    for quantity in (0, -1, 6, "2", True, None):
        resp = _buy(api, card, quantity)
        assert resp.status_code == 400, quantity
        assert resp.get_json()["error"]["details"]["field"] == "quantity"
    assert _buy(api, 9999).status_code == 404
    assert _buy(api, card, 1, key="short").status_code == 400
    no_points = _buy(api, listing_id(app, "points"))
    assert no_points.status_code == 409
    assert "5000" in no_points.get_json()["error"]["message"]
    assert counts(app) == before
    # Double submit: the same key returns the first order; another order under it is refused.
    first = _buy(api, card, 3, key="key-double-1")
    assert first.status_code == 201
    after_first = counts(app)
    second = _buy(api, card, 3, key="key-double-1")
    assert second.status_code == 200
    assert second.get_json()["order"]["id"] == first.get_json()["order"]["id"]
    assert _buy(api, card, 2, key="key-double-1").status_code == 409
    assert counts(app) == after_first
    # Per-wallet cap (5): 3 pending + 3 more is refused.
    over = _buy(api, card, 3, key="key-over-cap")
    assert over.status_code == 409 and over.get_json()["error"]["code"] == "wallet_cap_exceeded"
    assert counts(app) == after_first


def test_sold_out_listing_is_refused(shop_app, w3, anvil):
    app = shop_app
    deployed = app_deployed(app)
    sale = contract(w3, deployed, SALE)
    lister = role_address("catalogue")
    coll = deployed.address("towns.sarabetsu.collections.ambassador")
    block = w3.eth.get_block("latest")["timestamp"]
    struct = (
        coll,
        0,
        block - 10,
        block + 10**6,
        deployed.address("TestYenStablecoin"),
        5,
        1,
        0,
        lister,
        False,
        False,
        2**256 - 1,
    )
    sale.functions.createListing(struct).transact({"from": lister})
    mine(w3)
    with app.app_context():
        s = get_db().session
        base = s.scalar(
            sa.select(Listing).where(Listing.payment_kind == "card").order_by(Listing.id)
        )
        one = ListingFactory(
            town_id=base.town_id,
            collection_id=base.collection_id,
            payment_kind="card",
            price=5000,
            supply=1,
            wallet_cap=5,
            starts_at=base.starts_at,
            ends_at=base.ends_at,
            chain_listing_id=sale.functions.listingCount().call(),
        )
        s.commit()
        lid = one.id
    a, b = Api(app.test_client()), Api(app.test_client())
    a.signup("a@example.com")
    b.signup("b@example.com")
    first = _buy(a, lid)
    assert first.status_code == 201, first.get_json()
    before = counts(app)
    resp = _buy(b, lid)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "sold_out"
    assert counts(app) == before


def test_a_card_payment_of_another_amount_is_refunded_and_mints_nothing(shop_app, w3):
    """A payment whose amount is not the order's (a payment link paid with the order's id, an
    amount the provider changed) must not keep the buyer's money: the order is refunded, the
    refund is audited, nothing is minted and its unit goes back on sale."""
    from backend.shop.supply import remaining

    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    lid = listing_id(app, "card")
    with app.app_context():
        left = remaining(get_db().session, get_db().session.get(Listing, lid))
    order = _buy(api, lid).get_json()["order"]
    assert _webhook(app, api, order["id"], amount=50).get_json() == {"result": "processed"}
    drive(app, w3)
    o = _order(app, order["id"])
    assert o.status == "refunded" and o.refund_ref == f"re_test_pay_test_{order['id']}"
    with app.app_context():
        s = get_db().session
        assert payment_provider().refunds == [f"pay_test_{order['id']}"]
        (refund,) = s.scalars(sa.select(AuditLog).where(AuditLog.subject_id == order["id"])).all()
        assert refund.action == "payment.refund" and int(refund.amount) == 50  # paid, given back
        assert remaining(s, s.get(Listing, lid)) == left
    assert api.get("/api/shop/my/collection").get_json()["tokens"] == []
    assert api.get(f"/api/shop/orders/{order['id']}").get_json()["order"]["status"] == "refunded"


def test_a_forged_webhook_with_odd_characters_is_refused_not_a_server_error(shop_app):
    """Anyone can post to the webhook: a signature header in non-ASCII characters (Latin-1
    bytes) is a bad signature (400), not a 500, and changes nothing."""
    app = shop_app
    api = Api(app.test_client())
    api.signup("fan@example.com")
    order = _buy(api, listing_id(app, "card")).get_json()["order"]
    before = counts(app)
    with app.app_context():
        payload, _ = payment_provider().signed_event(order["id"], "paid", 5000)
    resp = api.client.post(
        "/api/payments/webhooks/test", data=payload, headers={"X-Test-Signature": "\u00e9" * 64}
    )
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_signature"
    assert counts(app) == before
    assert _order(app, order["id"]).status == "pending_payment"


def test_an_event_for_a_checkout_that_is_no_order_of_ours_is_ignored(shop_app):
    """The provider sends every checkout of the account to the one webhook, some with a
    reference no order has (Stripe's client_reference_id: up to 200 characters, set by anyone
    opening a payment link with ?client_reference_id=...). It is recorded and ignored; a
    reference longer than our ids overflowed its column, a 500 the provider retried for days."""
    app = shop_app
    api = Api(app.test_client())
    for ref in ("x" * 41, "y" * 100):
        with app.app_context():
            payload, headers = payment_provider().signed_event(ref, "declined", 5000)
        resp = api.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
        assert resp.get_json() == {"result": "ignored"}
        again = api.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
        assert again.get_json() == {"result": "duplicate"}


def test_an_unpaid_card_checkout_gives_its_unit_back_and_a_late_payment_is_refunded(shop_app, w3):
    """A tourist who closes the payment page must not hold a limited edition: after the checkout
    time the unit goes back on sale (a checkout within it keeps its unit); a payment that still
    arrives for it is refunded with an audit row, never kept, and mints nothing."""
    import datetime as dt

    from backend.core.db import utcnow
    from backend.shop.card_payments import CHECKOUT_TTL
    from backend.shop.supply import remaining

    app = shop_app
    late, prompt = Api(app.test_client()), Api(app.test_client())
    late.signup("late@example.com")
    prompt.signup("prompt@example.com")
    lid = listing_id(app, "card")
    with app.app_context():
        left = remaining(get_db().session, get_db().session.get(Listing, lid))
    closed = _buy(late, lid).get_json()["order"]
    open_ = _buy(prompt, lid).get_json()["order"]
    with app.app_context():
        s = get_db().session
        s.execute(
            sa.update(Order)
            .where(Order.public_id == closed["id"])
            .values(created_at=utcnow() - CHECKOUT_TTL - dt.timedelta(minutes=1))
        )
        s.commit()
        assert remaining(s, s.get(Listing, lid)) == left - 2

    drive(app, w3)  # the reconciliation beat runs
    assert late.get(f"/api/shop/orders/{closed['id']}").get_json()["order"]["status"] == "declined"
    assert _order(app, open_["id"]).status == "pending_payment"
    with app.app_context():
        s = get_db().session
        assert remaining(s, s.get(Listing, lid)) == left - 1
    page = late.client.get(f"/shop/orders/{closed['id']}", headers={"Accept-Language": "en"})
    assert "not paid in time" in page.get_data(as_text=True)

    # The payment page was still open: the money arrives after all, and goes back, once,
    # however many times at once the provider delivers it.
    with app.app_context():
        payload, headers = payment_provider().signed_event(closed["id"], "paid", 5000)
    answers = at_once(
        [
            lambda: app.test_client().post(
                "/api/payments/webhooks/test", data=payload, headers=headers
            )
            for _ in range(10)
        ]
    )
    results = sorted(r.get_json()["result"] for r in answers)
    assert results == ["duplicate"] * 9 + ["processed"], results
    with app.app_context():
        assert payment_provider().refunds == [f"pay_test_{closed['id']}"]
    drive(app, w3)
    o = _order(app, closed["id"])
    assert o.status == "refunded" and o.refund_ref == f"re_test_pay_test_{closed['id']}"
    with app.app_context():
        s = get_db().session
        (refund,) = s.scalars(sa.select(AuditLog).where(AuditLog.subject_id == closed["id"])).all()
        assert refund.action == "payment.refund" and int(refund.amount) == 5000
        assert remaining(s, s.get(Listing, lid)) == left - 1
    assert late.get("/api/shop/my/collection").get_json()["tokens"] == []
    # The prompt buyer's payment is honoured as ever.
    assert _webhook(app, prompt, open_["id"]).get_json() == {"result": "processed"}
    drive(app, w3)
    assert _order(app, open_["id"]).status == "completed"
