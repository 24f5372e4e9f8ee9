"""Ten pays of one charge at once, with a partner town's points (and mixed with the shop's own
town's points), on PostgreSQL and SQLite: one payment is queued (one outbox call, one audit
row), every other request gets the same paying charge (200) or a clear 409, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.indexer_models import TokenBalance
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import ACTIVE, Charge
from backend.merchants.services import merchant_service
from backend.partners.models import ACTIVE as PARTNERS_ACTIVE
from backend.partners.models import Partnership
from tests.concurrency import at_once
from tests.merchants.conftest import Api, _signup, assert_error
from tests.merchants.test_money_concurrency import _count
from tests.partners.conftest import CLERK, CUSTOMER, SARABETSU_STAFF, _town

N = 10


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    app.extensions["limiter"].enabled = False  # the database's guards must hold by themselves
    return app


@pytest.fixture
def shop(app: Flask, deployed: Deployments) -> dict[str, Any]:
    """Partner towns (active, as if both PartnerSet were indexed), an active Sarabetsu shop, a
    customer with confirmed points in both towns (as if indexed)."""
    with app.app_context():
        s = get_db().session
        sara = _town("sarabetsu", "更別村", "Sarabetsu", deployed)
        toya = _town("toyako", "洞爺湖町", "Lake Toya", deployed)
        users = {e: _signup(app, e) for e in (SARABETSU_STAFF, CLERK, CUSTOMER)}
        grant_town_role(users[SARABETSU_STAFF], sara.id, STAFF)
        s.commit()
        svc = merchant_service()
        m = svc.register_merchant(users[SARABETSU_STAFF], sara, "直売所", "Farm Market")
        svc.add_staff(users[SARABETSU_STAFF], m, users[CLERK])
        m.status = ACTIVE
        a, b = sorted((sara.id, toya.id))
        s.add(
            Partnership(
                town_a_id=a, town_b_id=b, status=PARTNERS_ACTIVE, a_approved_by=1, b_approved_by=2
            )
        )
        for town in (sara, toya):
            s.merge(
                TokenBalance(
                    chain_id=town.chain_id,
                    contract_address=town.points_address,
                    holder=users[CUSTOMER].addresses[0].address,
                    amount=Decimal(500),
                )
            )
        s.commit()
        return {"merchant_id": m.id, "toyako_id": toya.id, "sarabetsu_id": sara.id}


def _calls(app: Flask, function: str) -> int:
    return _count(
        app, sa.select(sa.func.count()).select_from(OutboxTx).where(OutboxTx.function == function)
    )


def _audits(app: Flask) -> int:
    return _count(
        app,
        sa.select(sa.func.count())
        .select_from(AuditLog)
        .where(AuditLog.action.in_(("points.pay", "points.pay_partner"))),
    )


@pytest.mark.parametrize("mixed", [False, True], ids=["partner-points", "mixed"])
def test_ten_pays_of_one_charge_at_once_pay_once(app, shop, mixed):
    clerk = Api(app).login(CLERK)
    r = clerk.post(
        f"/api/merchants/{shop['merchant_id']}/charges",
        {"amount": 200, "idempotency_key": "race-p1"},
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    charge = r.get_json()["charge"]
    sessions = [Api(app).login(CUSTOMER) for _ in range(N)]
    url = f"/api/pay/{charge['code']}"
    bodies = [{} if mixed and i % 2 else {"points_town": "toyako"} for i in range(N)]
    answers = at_once(
        [
            (lambda api=api, body=body: api.post(url, body))
            for api, body in zip(sessions, bodies, strict=True)
        ]
    )
    shown = [f"{a.status_code} {a.get_data(as_text=True)[:300]}" for a in answers]
    assert all(a.status_code in (200, 409) for a in answers), shown
    assert any(a.status_code == 200 for a in answers), shown
    for a in answers:
        if a.status_code == 200:
            got = a.get_json()["charge"]
            assert (got["id"], got["status"]) == (charge["id"], "paying")
        else:
            assert_error(a, 409)
    assert _calls(app, "payPartnerMerchant") + _calls(app, "transfer") == 1, shown
    if not mixed:
        assert _calls(app, "payPartnerMerchant") == 1
    assert _audits(app) == 1, shown
    with app.app_context():
        row = get_db().session.get(Charge, charge["id"])
        assert row.status == "paying"
        partner = _calls(app, "payPartnerMerchant") == 1
        assert row.points_town_id == (shop["toyako_id"] if partner else shop["sarabetsu_id"])
        get_db().session.commit()
