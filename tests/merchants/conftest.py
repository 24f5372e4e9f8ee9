"""Merchants fixtures: a town with staff, a shop and its clerk, a customer; a CSRF-aware JSON
client per user; helpers that drive the outbox and the indexer as the worker would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.indexer_models import TokenBalance
from backend.chain.indexer_tasks import index_blocks
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import ACTIVE, Charge, Merchant, ResidentCard, Settlement
from backend.merchants.services import MerchantService, merchant_service
from backend.regions.models import Town
from tests.anvil_pool import outbox_round
from tests.factories import TownFactory

PASSWORD = "correct horse battery"
POINTS = "towns.sarabetsu.RegionPoints"
OTHER_POINTS = "towns.toyako.RegionPoints"  # the partner town's own points (backend/deploy.py)


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False  # tests drive the outbox themselves
    return app


class Api:
    """A test client of one user that sends the CSRF token with every POST."""

    def __init__(self, app: Flask) -> None:
        self.client = app.test_client()
        self.token: str | None = None

    def get(self, url: str) -> Any:
        return self.client.get(url)

    def post(self, url: str, json: Any = None) -> Any:
        if self.token is None:
            self.token = self.client.get("/api/csrf").get_json()["csrf_token"]
        resp = self.client.post(url, json=json, headers={"X-CSRFToken": self.token})
        body = resp.get_json(silent=True)
        if isinstance(body, dict) and "csrf_token" in body:
            self.token = body["csrf_token"]
        return resp

    def login(self, email: str) -> Api:
        resp = self.post("/api/auth/login", {"email": email, "password": PASSWORD})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return self


@dataclass
class World:
    app: Flask
    town_id: int
    other_town_id: int
    merchant_id: int
    other_merchant_id: int
    staff: str = "staff@example.com"
    other_staff: str = "staff@other.example"
    clerk: str = "clerk@example.com"
    other_clerk: str = "clerk@other.example"
    customer: str = "customer@example.com"
    neighbour: str = "neighbour@example.com"

    def api(self, email: str) -> Api:
        return Api(self.app).login(email)

    def user(self, email: str) -> User:
        user = get_db().session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        return user

    def service(self) -> MerchantService:
        return merchant_service()

    def town(self, town_id: int | None = None) -> Town:
        town = get_db().session.get(Town, town_id or self.town_id)
        assert town is not None
        return town


def _signup(app: Flask, email: str) -> User:
    return AccountService(get_db().session(), lambda: get_vault(app)).signup(
        email, PASSWORD, verified=True
    )


def _town(slug: str, chain_id: int, points: str | None) -> Town:
    town = TownFactory(
        slug=slug, name_ja=slug, name_en=slug.title(), chain_id=chain_id, points_address=points
    )
    get_db().session.commit()
    return town


@pytest.fixture
def world(app: Flask, deployed: Deployments) -> World:
    """Sarabetsu and Lake Toya (toyako), each on its own deployed points, each with staff, a shop
    and a clerk. The shops are marked active directly (registration on chain is tested on its
    own)."""
    with app.app_context():
        town = _town("sarabetsu", deployed.chain_id, deployed.address(POINTS))
        other = _town("toyako", deployed.chain_id, deployed.address(OTHER_POINTS))
        users = {
            e: _signup(app, e)
            for e in (
                "staff@example.com",
                "staff@other.example",
                "clerk@example.com",
                "clerk@other.example",
                "customer@example.com",
                "neighbour@example.com",
            )
        }
        grant_town_role(users["staff@example.com"], town.id, STAFF)
        grant_town_role(users["staff@other.example"], other.id, STAFF)
        get_db().session.commit()
        svc = merchant_service()
        shop = svc.register_merchant(users["staff@example.com"], town, "直売所", "Farm Market")
        shop2 = svc.register_merchant(users["staff@other.example"], other, "別の店", "Other Shop")
        svc.add_staff(users["staff@example.com"], shop, users["clerk@example.com"])
        svc.add_staff(users["staff@other.example"], shop2, users["clerk@other.example"])
        shop.status = shop2.status = ACTIVE
        get_db().session.commit()
        return World(app, town.id, other.id, shop.id, shop2.id)


def set_balance(
    app: Flask, world: World, email: str, amount: int, town_id: int | None = None
) -> None:
    """Put a confirmed balance of a town's points (Sarabetsu's by default) in the projection (as
    if the indexer had seen it)."""
    with app.app_context():
        s = get_db().session
        town = world.town(town_id)
        address = world.user(email).addresses[0].address
        s.merge(
            TokenBalance(
                chain_id=town.chain_id,
                contract_address=town.points_address,
                holder=address,
                amount=Decimal(amount),
            )
        )
        s.commit()


def snapshot(app: Flask) -> dict[str, Any]:
    """What a refused request must leave unchanged."""
    with app.app_context():
        s = get_db().session
        count = lambda m: s.scalar(sa.select(sa.func.count()).select_from(m))  # noqa: E731
        return {
            "outbox": count(OutboxTx),
            "audit": count(AuditLog),
            "charges": count(Charge),
            "settlements": count(Settlement),
            "merchants": count(Merchant),
            "balances": sorted(
                (b.holder, int(b.amount)) for b in s.scalars(sa.select(TokenBalance))
            ),
            "charge_states": sorted((c.id, c.status) for c in s.scalars(sa.select(Charge))),
            "cards": sorted(
                (c.id, c.locked_at is None) for c in s.scalars(sa.select(ResidentCard))
            ),
        }


def assert_error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def run_chain(app: Flask, w3: Web3, rounds: int = 3) -> None:
    """What the worker's beat does: send queued rows, mine, read receipts, index events."""
    with app.app_context():
        svc = outbox_service()
        session = get_db().session
        for _ in range(rounds):
            outbox_round(svc, session, w3)
            session.commit()
        index_blocks()
        session.remove()


def customer_code(api: Api) -> str:
    """A fresh single-use code of the signed-in customer (POST /api/me/customer-codes)."""
    r = api.post("/api/me/customer-codes")
    assert r.status_code == 201, r.get_data(as_text=True)
    return str(r.get_json()["code"])


def start_card_charge(api: Api, merchant_id: int, code: str, key: str, amount: int = 10) -> Any:
    """The clerk's half of a card payment: the response (202 with the PIN pad, or an error)."""
    return api.post(
        f"/api/merchants/{merchant_id}/charge-customer",
        {"amount": amount, "customer_code": code, "idempotency_key": key},
    )


def pay_by_card(api: Api, merchant_id: int, code: str, pin: str, key: str, amount: int = 10) -> Any:
    """A whole card payment: the clerk starts it, the resident types `pin` on the pad. Returns
    the pad's answer (200 when paid), or the clerk's refusal when no pad was opened."""
    r = start_card_charge(api, merchant_id, code, key, amount)
    if r.status_code != 202:
        return r
    return api.post(f"/api/pin-pad/{r.get_json()['pin_pad_token']}", {"pin": pin})
