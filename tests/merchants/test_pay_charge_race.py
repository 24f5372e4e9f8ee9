"""Issue 11: the customer's "pay" of a QR charge (POST /api/pay/<code>, MerchantService.pay_charge)
raced with threads on PostgreSQL AND SQLite, where `with_for_update()` does nothing:

- one charge paid by the same customer from 8 sessions at once (each request with its own
  request key, and again all with one key): one payment is queued (one outbox transfer, one
  "points.pay" audit row), the charge is "paying", the points are debited once, and every
  other request gets the first answer (200, the same paying charge) or a clear 409, never a 5xx;
- two charges of one customer paid at once when the balance covers only one: one is accepted,
  the other is refused with 409 insufficient_points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import Charge
from tests.concurrency import at_once
from tests.merchants.conftest import assert_error, set_balance
from tests.merchants.test_money_concurrency import _count

N = 8


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    app.extensions["limiter"].enabled = False  # the database's guards must hold by themselves
    return app


def _qr_charge(world: Any, amount: int, key: str) -> dict[str, Any]:
    r = world.api(world.clerk).post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": amount, "idempotency_key": key}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()["charge"]  # type: ignore[no-any-return]


def _transfers(app: Flask) -> int:
    return _count(
        app,
        sa.select(sa.func.count()).select_from(OutboxTx).where(OutboxTx.function == "transfer"),
    )


def _pay_audits(app: Flask) -> int:
    return _count(
        app, sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "points.pay")
    )


def _bodies(answers: list[Any]) -> list[str]:
    return [f"{r.status_code} {r.get_data(as_text=True)}" for r in answers]


@pytest.mark.parametrize("same_key", [False, True], ids=["own-keys", "one-key"])
def test_one_charge_paid_from_eight_sessions_at_once_pays_once(app, world, same_key):
    set_balance(app, world, world.customer, 500)
    charge = _qr_charge(world, 300, "race-qr-1")
    sessions = [world.api(world.customer) for _ in range(N)]
    url = f"/api/pay/{charge['code']}"
    answers = at_once(
        [
            (
                lambda api=api, i=i: api.post(
                    url, {"idempotency_key": "pay-race-1" if same_key else f"pay-race-{i}"}
                )
            )
            for i, api in enumerate(sessions)
        ]
    )
    statuses = [r.status_code for r in answers]
    assert all(s < 500 for s in statuses), _bodies(answers)
    assert set(statuses) <= {200, 409}, _bodies(answers)
    assert 200 in statuses, _bodies(answers)
    for r in answers:
        if r.status_code == 200:  # the first request's answer: the same charge, paying
            got = r.get_json()["charge"]
            assert (got["id"], got["status"], got["amount"]) == (charge["id"], "paying", 300)
        else:
            assert_error(r, 409)
    # One payment: one transfer queued, one audit row, the charge paying with this payer.
    assert _transfers(app) == 1, _bodies(answers)
    assert _pay_audits(app) == 1, _bodies(answers)
    with app.app_context():
        row = get_db().session.get(Charge, charge["id"])
        assert row is not None and row.status == "paying"
        assert row.payer_user_id == world.user(world.customer).id
        tx = get_db().session.get(OutboxTx, row.outbox_tx_id)
        assert tx is not None and int(tx.args[1]) == 300
    # The points are debited once: 500 - 300 available, 300 pending out.
    mine = sessions[0].get("/api/points").get_json()["towns"][0]
    assert (mine["pending_out"], mine["available"]) == (300, 200)
    # Paying again later answers the same paying charge and queues nothing more.
    again = sessions[1].post(url)
    assert again.status_code == 200 and again.get_json()["charge"]["status"] == "paying"
    assert _transfers(app) == 1 and _pay_audits(app) == 1


def test_two_charges_the_balance_covers_once_are_not_both_accepted(app, world):
    set_balance(app, world, world.customer, 100)
    first, second = _qr_charge(world, 80, "race-two-1"), _qr_charge(world, 80, "race-two-2")
    sessions = [world.api(world.customer) for _ in range(2)]
    answers = at_once(
        [
            (lambda api=sessions[0]: api.post(f"/api/pay/{first['code']}")),
            (lambda api=sessions[1]: api.post(f"/api/pay/{second['code']}")),
        ]
    )
    assert sorted(r.status_code for r in answers) == [200, 409], _bodies(answers)
    refused = next(r for r in answers if r.status_code == 409)
    assert_error(refused, 409, "insufficient_points")
    assert _transfers(app) == 1 and _pay_audits(app) == 1
    with app.app_context():
        states = sorted(
            get_db().session.scalars(
                sa.select(Charge.status).where(Charge.id.in_([first["id"], second["id"]]))
            )
        )
    assert states == ["paying", "pending"]
    mine = sessions[0].get("/api/points").get_json()["towns"][0]
    assert (mine["pending_out"], mine["available"]) == (80, 20)
