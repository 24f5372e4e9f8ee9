"""Premium points fixtures: Sarabetsu with its deployed points contract, town staff, a buyer,
the town's offer (20 % premium, ¥1,000 steps, ¥10,000 a purchase, ¥30,000 a person a month),
and helpers that post the buy form, deliver the test provider's signed webhook and drive the
chain (what the worker's beat does)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.premium.models import PremiumPurchase, PremiumTotal
from backend.premium.offers import OfferService
from backend.premium.services import payment_provider, purchase_service
from backend.regions.models import Town
from tests.points.conftest import run_chain

PASSWORD = "correct horse battery"
OFFER = {
    "programme_id": "2",  # the preset paid programme ("purchase premium", 180 days)
    "premium_percent": "20",
    "unit_yen": "1000",
    "max_yen_per_purchase": "10000",
    "person_month_yen": "30000",
    "town_month_yen": "",
    "active": "1",
}


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def add_town(app: Flask, deployed: Deployments) -> int:
    with app.app_context():
        town = Town(
            slug="sarabetsu",
            name_ja="更別村",
            name_en="Sarabetsu",
            chain_id=deployed.chain_id,
            points_address=deployed.address("towns.sarabetsu.RegionPoints"),
        )
        get_db().session.add(town)
        get_db().session.commit()
        return town.id


def add_user(app: Flask, email: str, town_id: int | None = None, role: str | None = None) -> int:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        user = svc.signup(email, PASSWORD, verified=True)
        if role and town_id:
            grant_town_role(user, town_id, role)
            get_db().session.commit()
        return user.id


def set_offer(app: Flask, town_id: int, staff_id: int, **changes: str) -> None:
    with app.app_context():
        s = get_db().session
        OfferService(s()).save(s.get(User, staff_id), s.get(Town, town_id), {**OFFER, **changes})


@pytest.fixture
def town_id(app: Flask, deployed: Deployments) -> int:
    return add_town(app, deployed)


@pytest.fixture
def staff_id(app: Flask, town_id: int) -> int:
    return add_user(app, "staff@example.com", town_id, STAFF)


@pytest.fixture
def offer(app: Flask, town_id: int, staff_id: int) -> None:
    set_offer(app, town_id, staff_id)


@pytest.fixture
def buyer_id(app: Flask) -> int:
    return add_user(app, "buyer@example.com")


class Person:
    """A signed-in test client that posts forms with the page's CSRF token and one-time key."""

    def __init__(self, app: Flask, email: str, lang: str = "en") -> None:
        self.app = app
        self.client = app.test_client()
        self.headers = {"Accept-Language": lang}
        token = self.client.get("/api/csrf").get_json()["csrf_token"]
        resp = self.client.post(
            "/api/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-CSRFToken": token},
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)

    def get(self, url: str) -> Any:
        return self.client.get(url, headers=self.headers)

    def keys(self, url: str) -> dict[str, str]:
        html = self.get(url).get_data(as_text=True)
        out = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)}
        key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
        # A page with no form (e.g. the month's limit used up) still gets a well-formed key: a
        # request sent anyway must be refused by the service, not by a missing field.
        out["idempotency_key"] = key.group(1) if key else uuid.uuid4().hex
        return out

    def post(self, url: str, data: dict[str, str], keys: dict[str, str] | None = None) -> Any:
        return self.client.post(
            url, data={**data, **(keys or self.keys(url))}, headers=self.headers
        )

    def buy(self, yen: str | int, keys: dict[str, str] | None = None) -> Any:
        url = "/towns/sarabetsu/points/buy"
        return self.post(url, {"yen": str(yen)}, keys or self.keys(url))


def public_id_of(resp: Any) -> str:
    assert resp.status_code == 302, resp.get_data(as_text=True)
    found = re.search(r"(pp_[0-9a-f]+)", resp.headers["Location"])
    assert found, resp.headers["Location"]
    return found.group(1)


def webhook(app: Flask, public_id: str, kind: str = "paid", amount: int = 1000) -> Any:
    """The test provider's signed event, posted to the provider's one webhook URL."""
    with app.app_context():
        payload, headers = payment_provider().signed_event(public_id, kind, amount)
    return app.test_client().post("/api/payments/webhooks/test", data=payload, headers=headers)


def drive(app: Flask, w3: Web3, rounds: int = 1) -> None:
    """Send, mine, read receipts, index, then reconcile purchases (the beat's work)."""
    for _ in range(rounds):
        run_chain(app, w3)
        with app.app_context():
            purchase_service().reconcile()


def purchase(app: Flask, public_id: str) -> PremiumPurchase:
    with app.app_context():
        s = get_db().session
        p = s.scalar(sa.select(PremiumPurchase).where(PremiumPurchase.public_id == public_id))
        s.expunge(p)
        return p


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        out = {
            m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (PremiumPurchase, OutboxTx, AuditLog)
        }
        out["reserved_yen"] = int(
            s.scalar(sa.select(sa.func.coalesce(sa.func.sum(PremiumTotal.total_yen), 0))) or 0
        )
        return out


def actions(app: Flask, purchase_id: int) -> list[str]:
    with app.app_context():
        return sorted(
            get_db()
            .session.scalars(
                sa.select(AuditLog.action).where(
                    AuditLog.subject_type == "premium_purchase",
                    AuditLog.subject_id == str(purchase_id),
                )
            )
            .all()
        )
