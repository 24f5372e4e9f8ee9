"""Shared helpers for the shop and payments tests: drive the outbox and the indexer in-process
(what the beat tasks do), load the demo shop, sign up users through the JSON API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import User
from backend.chain.indexer import Indexer, JsonRpc
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments, artifact
from backend.core.db import get_db, utcnow
from backend.core.models import AuditLog
from backend.regions.models import Town
from backend.shop.models import CheckIn, Collection, Listing, Order, PaymentEventRecord
from scripts.demo_data import load_demo_data
from tests.anvil_pool import outbox_round

PASSWORD = "correct horse battery"


def mine(w3: Web3, blocks: int = 1) -> None:
    w3.provider.make_request("anvil_mine", [hex(blocks)])


def drive(app: Flask, w3: Web3, rounds: int = 3) -> None:
    """Send every queued outbox row, mine, read receipts, then index and reconcile orders."""
    from backend.shop.tasks import reconcile_orders

    with app.app_context():
        svc = outbox_service()
        session = get_db().session
        for _ in range(rounds):
            outbox_round(svc, session, w3)
        index_to_head(app)
        session.expire_all()
        reconcile_orders()


def index_to_head(app: Flask, passes: int = 20) -> None:
    """Index the chain up to its head (inside an app context). One pass stops at its time
    budget, which a loaded machine can reach before the last blocks (shop_app once found four
    demo listings without their chain id): passes are repeated until one has caught up."""
    settings = app.extensions["settings"]
    indexer = Indexer(
        get_db().engine,
        JsonRpc(settings.rpc_url),
        deployments_dir=settings.deployments_dir,
        confirmations=0,
    )
    for _ in range(passes):
        if indexer.run(max_seconds=30).caught_up:
            return
    raise AssertionError(f"the indexer had not caught up after {passes} passes")


def contract(w3: Web3, deployed: Deployments, key: str, name: str | None = None) -> Any:
    return w3.eth.contract(
        address=deployed.address(key), abi=artifact(name or deployed.contracts[key].contract).abi
    )


class Api:
    """A test client that sends the CSRF token with every POST."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token: str | None = None

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, **kw)

    def post(self, url: str, json: Any = None, **kw: Any) -> Any:
        if self.token is None:
            self.token = self.client.get("/api/csrf").get_json()["csrf_token"]
        resp = self.client.post(url, json=json, headers={"X-CSRFToken": self.token}, **kw)
        body = resp.get_json(silent=True)
        if isinstance(body, dict) and "csrf_token" in body:
            self.token = body["csrf_token"]
        return resp

    def signup(self, email: str) -> dict[str, Any]:
        resp = self.post("/api/accounts/signup", {"email": email, "password": PASSWORD})
        assert resp.status_code == 201, resp.get_data(as_text=True)
        return resp.get_json()


def confirm_email(app: Flask, email: str) -> None:
    """The account of `email` confirmed its address (as the mail's link does)."""
    with app.app_context():
        s = get_db().session
        s.scalar(sa.select(User).where(User.email == email)).email_verified_at = utcnow()
        s.commit()


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (Order, OutboxTx, AuditLog, PaymentEventRecord, CheckIn)
        }


def listing_id(
    app: Flask, kind: str, town: str = "sarabetsu", collection: str = "ambassador"
) -> int:
    """The demo listing of `kind` (Sarabetsu's ambassador card's by default)."""
    with app.app_context():
        return get_db().session.scalar(
            sa.select(Listing.id)
            .join(Collection, Collection.id == Listing.collection_id)
            .join(Town, Town.id == Listing.town_id)
            .where(Listing.payment_kind == kind, Town.slug == town, Collection.slug == collection)
        )


@pytest.fixture
def shop_app(make_app: Callable[..., Flask], deployed: Deployments, w3: Web3) -> Flask:
    """An app with the demo shop loaded and its listings, roles and perk set on chain."""
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    with app.app_context():
        session = get_db().session
        listings = session.scalars(sa.select(Listing).order_by(Listing.id)).all()
        missing = [
            (row.id, tx.state if tx else None, len(tx.attempts) if tx else 0, tx and tx.error)
            for row in listings
            if row.chain_listing_id is None
            for tx in [session.get(OutboxTx, row.outbox_tx_id) if row.outbox_tx_id else None]
        ]
    # (listing, its outbox row's state, attempts, error) for each listing without a chain id
    assert listings and not missing, missing
    return app


@pytest.fixture
def any_db_shop(
    make_app: Callable[..., Flask], deployed: Deployments, w3: Web3, any_db_url: str
) -> Flask:
    """The demo shop (as shop_app) on PostgreSQL and on SQLite, where FOR UPDATE does nothing."""
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    return app


VENUE = ("venue@sarabetsu.example", "furusato-demo-venue")


def bought_card(app: Flask, w3: Web3) -> tuple[Api, dict[str, Any]]:
    """A fan who bought Sarabetsu's ambassador card by card, and the token with its ticket code."""
    from backend.shop.services import payment_provider

    fan = Api(app.test_client())
    fan.signup("fan@example.com")
    order = fan.post(
        "/api/shop/orders",
        {"listing_id": listing_id(app, "card"), "quantity": 1, "idempotency_key": "fan-order-1"},
    ).get_json()["order"]
    with app.app_context():
        payload, headers = payment_provider().signed_event(order["id"], "paid", 5000)
    fan.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
    drive(app, w3)
    (token,) = fan.get("/api/shop/my/collection").get_json()["tokens"]
    return fan, token
