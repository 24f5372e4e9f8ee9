"""Issue 11 §6: a second request with the same idempotency key, sent while the first one is
still running, gets the first request's answer (not a 500) for orders, check-ins and the card
webhook; one row is written. On PostgreSQL and SQLite, with real threads through the app."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.shop.models import CheckIn, Listing, Order, PaymentEventRecord
from scripts.demo_data import load_demo_data
from tests.concurrency import at_once, twin_first
from tests.shop.shop_helpers import Api, drive, listing_id

THREADS = 8
VENUE = ("venue@sarabetsu.example", "furusato-demo-venue")


@pytest.fixture
def shop(make_app, deployed, w3, any_db_url) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    with app.app_context():
        assert all(get_db().session.scalars(sa.select(Listing.chain_listing_id)).all())
    return app


def _clients(app: Flask, api: Api) -> list[Any]:
    """THREADS test clients sharing `api`'s session (a test client is not thread-safe)."""
    cookie = api.client.get_cookie("session")
    out = []
    for _ in range(THREADS):
        c = app.test_client()
        c.set_cookie("session", cookie.value)
        out.append(c)
    return out


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return get_db().session.scalar(sa.select(sa.func.count()).select_from(model))


def _signed_in(app: Flask, email: str | None = None, password: str | None = None) -> Api:
    api = Api(app.test_client())
    if email is None:
        api.signup("fan@example.com")
    else:
        assert (
            api.post("/api/auth/login", {"email": email, "password": password}).status_code == 200
        )
    api.post("/api/csrf")  # make sure the token is fresh for this session
    api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api


def _orderat_once(app: Flask, api: Api, key: str) -> list[Any]:
    body = {"listing_id": listing_id(app, "card"), "quantity": 1, "idempotency_key": key}
    headers = {"X-CSRFToken": api.token}
    return at_once(
        [
            lambda c=c: c.post("/api/shop/orders", json=body, headers=headers)
            for c in _clients(app, api)
        ]
    )


def test_concurrent_orders_with_one_key_get_the_first_answer(shop):
    api = _signed_in(shop)
    answers = _orderat_once(shop, api, "race-order-1")
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201}, statuses
    assert len({r.get_json()["order"]["id"] for r in answers}) == 1
    assert _count(shop, Order) == 1


def test_concurrent_deliveries_of_one_webhook_process_it_once(shop):
    from backend.shop.services import payment_provider

    api = _signed_in(shop)
    order = api.post(
        "/api/shop/orders",
        {"listing_id": listing_id(shop, "card"), "quantity": 1, "idempotency_key": "race-hook"},
    ).get_json()["order"]
    with shop.app_context():
        payload, headers = payment_provider().signed_event(order["id"], "paid", 5000)
    clients = [shop.test_client() for _ in range(THREADS)]
    answers = at_once(
        [
            lambda c=c: c.post("/api/payments/webhooks/test", data=payload, headers=headers)
            for c in clients
        ]
    )
    assert all(r.status_code == 200 for r in answers), [
        (r.status_code, r.get_json()) for r in answers
    ]
    results = sorted(r.get_json()["result"] for r in answers)
    assert results.count("processed") == 1 and set(results) <= {"processed", "duplicate"}
    assert _count(shop, PaymentEventRecord) == 1


def _card_with_a_ticket(shop: Flask, w3: Any) -> dict[str, Any]:
    """A fan's ambassador card, bought by card, paid and minted: its token with the ticket code
    (the card's perk has 3 uses)."""
    from backend.shop.services import payment_provider

    fan = _signed_in(shop)
    order = fan.post(
        "/api/shop/orders",
        {"listing_id": listing_id(shop, "card"), "quantity": 1, "idempotency_key": "race-card"},
    ).get_json()["order"]
    with shop.app_context():
        payload, headers = payment_provider().signed_event(order["id"], "paid", 5000)
    fan.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
    drive(shop, w3)
    (token,) = fan.get("/api/shop/my/collection").get_json()["tokens"]
    return dict(token)


def test_concurrent_check_ins_with_one_key_get_the_first_answer(shop, w3):
    token = _card_with_a_ticket(shop, w3)
    venue = _signed_in(shop, *VENUE)
    body = {"code": token["ticket_code"], "perk_id": 1, "idempotency_key": "race-use-1"}
    hdrs = {"X-CSRFToken": venue.token}
    answers = at_once(
        [
            lambda c=c: c.post("/api/shop/towns/sarabetsu/checkin", json=body, headers=hdrs)
            for c in _clients(shop, venue)
        ]
    )
    assert all(r.status_code == 201 for r in answers), [
        (r.status_code, r.get_json()) for r in answers
    ]
    assert len({str(r.get_json()) for r in answers}) == 1
    assert _count(shop, CheckIn) == 1


def test_a_twin_order_that_took_the_last_one_first_is_the_answer_not_a_refusal(shop, monkeypatch):
    """The exact interleaving behind a double-clicked "buy" under load: the second request
    finds no order with its key; then the first commits and takes the buyer's whole wallet cap;
    then the second checks the cap. It gets the first order (200), not "you can buy at most 1"."""
    from backend.accounts.models import User
    from backend.shop.orders import OrderService
    from backend.shop.services import order_service

    api = _signed_in(shop)
    lid = listing_id(shop, "card")
    with shop.app_context():
        s = get_db().session
        s.get(Listing, lid).wallet_cap = 1
        s.commit()
        user_id = s.scalar(sa.select(User.id).where(User.email == "fan@example.com"))
    body = {"listing_id": lid, "quantity": 1, "idempotency_key": "double-click-1"}

    def place_twin() -> str:
        user = get_db().session.get(User, user_id)
        return order_service().place(user, lid, 1, body["idempotency_key"]).order.public_id

    twin = twin_first(monkeypatch, OrderService, "listing_on_sale", shop, place_twin)
    second = api.post("/api/shop/orders", body)
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["order"]["id"] == twin[0]
    assert _count(shop, Order) == 1
    # A different key is still held to the cap: the refusal stands when there is no twin.
    third = api.post("/api/shop/orders", {**body, "idempotency_key": "another-key-1"})
    assert third.status_code == 409 and third.get_json()["error"]["code"] == "wallet_cap_exceeded"
    assert _count(shop, Order) == 1


def test_a_twin_check_in_that_used_the_last_use_first_is_the_answer_not_a_refusal(
    shop, w3, monkeypatch
):
    """A double tap at the venue on the ticket's last use: the second request finds no check-in
    with its key; then the first commits and uses the last use; then the second reads the uses
    left. It gets the first check-in (201), not "this ticket has no uses left"."""
    from backend.accounts.models import User
    from backend.regions.models import Town
    from backend.shop.checkin import CheckInService
    from backend.shop.services import checkin_service

    token = _card_with_a_ticket(shop, w3)
    venue = _signed_in(shop, *VENUE)
    url, hdrs = "/api/shop/towns/sarabetsu/checkin", {"X-CSRFToken": venue.token}
    for n in (1, 2):  # the card's perk has 3 uses: 2 used (pending), 1 left
        body = {"code": token["ticket_code"], "perk_id": 1, "idempotency_key": f"tap-use-{n}"}
        assert venue.client.post(url, json=body, headers=hdrs).status_code == 201
    body = {"code": token["ticket_code"], "perk_id": 1, "idempotency_key": "tap-use-3"}
    with shop.app_context():
        s = get_db().session
        venue_id = s.scalar(sa.select(User.id).where(User.email == VENUE[0]))
        town_id = s.scalar(sa.select(Town.id).where(Town.slug == "sarabetsu"))

    def check_in_twin() -> int:
        s = get_db().session
        return (
            checkin_service()
            .check_in(
                s.get(User, venue_id),
                s.get(Town, town_id),
                body["code"],
                1,
                body["idempotency_key"],
            )
            .id
        )

    twin = twin_first(monkeypatch, CheckInService, "lookup", shop, check_in_twin)
    second = venue.client.post(url, json=body, headers=hdrs)
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["checkin"]["id"] == twin[0]
    assert _count(shop, CheckIn) == 3
    # Another key on the used-up ticket is refused, and changes nothing.
    fourth = venue.client.post(url, json={**body, "idempotency_key": "tap-use-4"}, headers=hdrs)
    assert fourth.status_code >= 400 and fourth.get_json()["error"]["code"] == "used_up"
    assert _count(shop, CheckIn) == 3
