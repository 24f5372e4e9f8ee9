"""Partner towns fixtures: Sarabetsu and Tōyako, each on its own contracts (the session's
`deployed` fixture deploys both demo towns), with staff (two in Tōyako, for four eyes), a
Sarabetsu shop registered on chain and its clerk, and a customer holding Tōyako points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from web3 import Web3

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.merchants.models import Merchant
from backend.merchants.services import merchant_service
from backend.points.services import points_service
from backend.regions.models import Town
from tests.factories import TownFactory
from tests.merchants.conftest import Api, _signup, run_chain

SARABETSU_STAFF = "staff@sarabetsu.example"
TOYAKO_STAFF = "staff@toyako.example"
TOYAKO_STAFF2 = "staff2@toyako.example"
CLERK = "clerk@sarabetsu.example"
CUSTOMER = "tourist@example.com"


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False  # tests drive the outbox themselves
    return app


@dataclass
class Towns:
    app: Flask
    sarabetsu_id: int
    toyako_id: int
    merchant_id: int

    def api(self, email: str) -> Api:
        return Api(self.app).login(email)

    def user(self, email: str) -> User:
        user = get_db().session.scalar(sa.select(User).where(User.email == email))
        assert user is not None
        return user

    def town(self, slug: str) -> Town:
        town = get_db().session.scalar(sa.select(Town).where(Town.slug == slug))
        assert town is not None
        return town


def _town(slug: str, name_ja: str, name_en: str, d: Deployments) -> Town:
    town = TownFactory(
        slug=slug,
        name_ja=name_ja,
        name_en=name_en,
        chain_id=d.chain_id,
        points_address=d.address(f"towns.{slug}.RegionPoints"),
        points_symbol="TYA" if slug == "toyako" else "SRB",
    )
    get_db().session.commit()
    return town


@pytest.fixture
def towns(app: Flask, deployed: Deployments, w3: Web3) -> Towns:
    """Both towns, their staff, a Sarabetsu shop active on chain, a customer with 500 Tōyako
    welcome points (confirmed)."""
    with app.app_context():
        sara = _town("sarabetsu", "更別村", "Sarabetsu", deployed)
        toya = _town("toyako", "洞爺湖町", "Lake Toya", deployed)
        users = {
            e: _signup(app, e)
            for e in (SARABETSU_STAFF, TOYAKO_STAFF, TOYAKO_STAFF2, CLERK, CUSTOMER)
        }
        grant_town_role(users[SARABETSU_STAFF], sara.id, STAFF)
        grant_town_role(users[TOYAKO_STAFF], toya.id, STAFF)
        grant_town_role(users[TOYAKO_STAFF2], toya.id, STAFF)
        get_db().session.commit()
        svc = merchant_service()
        shop = svc.register_merchant(users[SARABETSU_STAFF], sara, "直売所", "Farm Market")
        svc.add_staff(users[SARABETSU_STAFF], shop, users[CLERK])
        points_service().grant_welcome_points(users[CUSTOMER], toya)
        ids = (sara.id, toya.id, shop.id)
    run_chain(app, w3)
    with app.app_context():
        assert get_db().session.get(Merchant, ids[2]).status == "active"
        get_db().session.commit()
    return Towns(app, *ids)


def partner_up(towns: Towns, w3: Web3) -> int:
    """Sarabetsu's staff propose, Tōyako's approve, both setPartner calls are confirmed."""
    sara = towns.api(SARABETSU_STAFF)
    page_post(sara, "/towns/sarabetsu/admin/partners", {"town": "toyako"})
    toya = towns.api(TOYAKO_STAFF)
    pid = partnership_id(towns)
    page_post(toya, f"/towns/toyako/admin/partners/{pid}/approve", {})
    run_chain(towns.app, w3)
    return pid


def partnership_id(towns: Towns) -> int:
    from backend.partners.models import Partnership

    with towns.app.app_context():
        pid = get_db().session.scalar(sa.select(Partnership.id))
        get_db().session.commit()
    assert pid is not None
    return int(pid)


def page_post(api: Api, url: str, form: dict[str, Any], status: int = 303) -> Any:
    """POST a page form with the session's CSRF token and a one-time key."""
    token = api.client.get("/api/csrf").get_json()["csrf_token"]
    resp = api.client.post(url, data={"csrf_token": token, "key": "k" * 8, **form})
    assert resp.status_code == status, resp.get_data(as_text=True)[:2000]
    return resp
