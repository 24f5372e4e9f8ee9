"""Helpers of the family proxy tests (issue 15 §1, ADR 0023): a resident registered at the town
hall, a family member linked as their proxy, the resident's points in the projection, a shop's
QR charge, and what a refused request must leave unchanged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.services import account_service
from backend.chain.indexer_models import TokenBalance
from backend.core.db import get_db, utcnow
from backend.merchants import proxies, town_hall
from backend.merchants.models import ProxyLink, SpendCounter
from backend.merchants.services import merchant_service
from tests.merchants.conftest import World, snapshot


def register_resident(app: Flask, world: World, name: str = "山田 花子") -> tuple[int, int]:
    """A resident registered at Sarabetsu's town hall (no e-mail, no password): (card id,
    user id)."""
    with app.app_context():
        done = town_hall.register_resident(
            get_db().session(),
            account_service().vault,
            world.user(world.staff),
            world.town(),
            name=name,
            id_seen=True,
            request_key=f"register-{name}-0001".replace(" ", "-"),
            now=utcnow(),
        )
        return done.card.id, done.user.id


def link(
    app: Flask,
    world: World,
    card_id: int,
    proxy_email: str,
    *,
    per_payment: int = 300,
    daily: int = 500,
    key: str = "link-key-0001",
) -> int:
    """Sarabetsu's staff link `proxy_email` as the proxy of the card's resident: the link id."""
    with app.app_context():
        row = proxies.link_proxy(
            merchant_service(),
            world.user(world.staff),
            world.town(),
            card_id,
            email=proxy_email,
            per_payment_limit=per_payment,
            daily_limit=daily,
            relation="child",
            agreed_in_person=True,
            request_key=key,
        )
        return row.id


def address_of(app: Flask, user_id: int) -> str:
    with app.app_context():
        found = get_db().session.scalar(
            sa.select(Address.address).where(Address.user_id == user_id, Address.kind == CUSTODIAL)
        )
        assert found is not None
        return str(found)


def give_points(app: Flask, world: World, user_id: int, amount: int) -> None:
    """A confirmed balance of Sarabetsu's points in the projection (as if indexed)."""
    holder = address_of(app, user_id)
    with app.app_context():
        s = get_db().session
        town = world.town()
        s.merge(
            TokenBalance(
                chain_id=town.chain_id,
                contract_address=town.points_address,
                holder=holder,
                amount=Decimal(amount),
            )
        )
        s.commit()


def qr_charge(world: World, amount: int, key: str, merchant_id: int | None = None) -> str:
    """A shop's pending QR charge (Sarabetsu's shop by default): its short code."""
    clerk = world.clerk if merchant_id in (None, world.merchant_id) else world.other_clerk
    r = world.api(clerk).post(
        f"/api/merchants/{merchant_id or world.merchant_id}/charges",
        {"amount": amount, "idempotency_key": key},
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return str(r.get_json()["charge"]["code"])


def user_named(app: Flask, email: str) -> User:
    with app.app_context():
        user = get_db().session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        return user


def state(app: Flask) -> dict[str, Any]:
    """What a refused request must leave unchanged: the merchants' snapshot, the links and the
    day counters."""
    snap = snapshot(app)
    with app.app_context():
        s = get_db().session
        snap["links"] = sorted((r.id, r.ended_at is None) for r in s.scalars(sa.select(ProxyLink)))
        snap["counters"] = sorted(
            (r.subject, int(r.amount)) for r in s.scalars(sa.select(SpendCounter))
        )
    return snap


def form(api: Any, url: str, data: dict[str, str], lang: str = "ja") -> Any:
    """A page form posted with the CSRF token (as the browser does)."""
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(
        url, data={"csrf_token": api.token, **data}, headers={"Accept-Language": lang}
    )
