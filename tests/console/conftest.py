"""Console fixtures: Sarabetsu with its admin, staff, data staff, a venue verifier, a shop and its
clerk; Lake Toya (toyako, on its own points) with its own admin; a customer and someone not yet
appointed. A CSRF-aware client per user (tests/merchants/conftest.py's Api) and helpers that post
the console's forms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import Membership, User
from backend.accounts.roles import ADMIN, DATA, STAFF, VERIFIER, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import ACTIVE, MerchantStaff
from backend.merchants.services import merchant_service
from tests.merchants.conftest import OTHER_POINTS, POINTS, Api, _signup, _town

EMAILS = {
    "admin": "admin@example.com",
    "staff": "staff@example.com",
    "data": "data@example.com",
    "verifier": "verifier@example.com",
    "clerk": "clerk@example.com",
    "other_admin": "admin@toyako.example",
    "customer": "customer@example.com",
    "newbie": "newbie@example.com",
}


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    app = make_app()
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing here goes on chain
    return app


@dataclass
class Town:
    app: Flask
    town_id: int
    other_town_id: int
    merchant_id: int

    def api(self, who: str) -> Api:
        return Api(self.app).login(EMAILS.get(who, who))

    def user_id(self, who: str) -> int:
        with self.app.app_context():
            uid = get_db().session.scalar(
                sa.select(User.id).where(User.email == EMAILS.get(who, who))
            )
            assert uid is not None
            return int(uid)


@pytest.fixture
def town(app: Flask, deployed: Deployments) -> Town:
    with app.app_context():
        sarabetsu = _town("sarabetsu", deployed.chain_id, deployed.address(POINTS))
        other = _town("toyako", deployed.chain_id, deployed.address(OTHER_POINTS))
        users = {k: _signup(app, e) for k, e in EMAILS.items()}
        grant_town_role(users["admin"], sarabetsu.id, ADMIN)
        grant_town_role(users["staff"], sarabetsu.id, STAFF)
        grant_town_role(users["data"], sarabetsu.id, DATA)
        grant_town_role(users["verifier"], sarabetsu.id, VERIFIER)
        grant_town_role(users["other_admin"], other.id, ADMIN)
        get_db().session.commit()
        svc = merchant_service()
        shop = svc.register_merchant(users["staff"], sarabetsu, "直売所", "Farm Market")
        svc.add_staff(users["staff"], shop, users["clerk"])
        shop.status = ACTIVE
        get_db().session.commit()
        return Town(app, sarabetsu.id, other.id, shop.id)


def form(api: Api, url: str, data: dict[str, str], lang: str | None = None) -> Any:
    """POST a console form as the browser does (csrf_token in the form)."""
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    headers = {"Accept-Language": lang} if lang else {}
    return api.client.post(url, data={"csrf_token": api.token, **data}, headers=headers)


def memberships(app: Flask) -> list[tuple[int, int, str]]:
    with app.app_context():
        rows = get_db().session.execute(
            sa.select(Membership.user_id, Membership.town_id, Membership.role)
        )
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


def shop_staff(app: Flask) -> list[tuple[int, int]]:
    with app.app_context():
        rows = get_db().session.execute(sa.select(MerchantStaff.merchant_id, MerchantStaff.user_id))
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


def audit_rows(app: Flask, prefix: str = "") -> list[dict[str, Any]]:
    with app.app_context():
        q = sa.select(AuditLog).order_by(AuditLog.id)
        if prefix:
            q = q.where(AuditLog.action.like(prefix + "%"))
        return [
            {
                "actor": a.actor,
                "action": a.action,
                "subject": f"{a.subject_type}:{a.subject_id}",
                "town_id": a.town_id,
                "details": dict(a.details or {}),
            }
            for a in get_db().session.scalars(q)
        ]


def state(app: Flask) -> tuple[Any, ...]:
    """What a refused request must leave unchanged."""
    with app.app_context():
        count = get_db().session.scalar(sa.select(sa.func.count()).select_from(AuditLog))
    return memberships(app), shop_staff(app), count
