"""Issue 15 §7: the shop's "cancel" and the customer's "pay" of one charge, 10 at once (5 and 5)
on PostgreSQL AND SQLite: the charge ends either paying (one transfer queued, one payment audit
row, no cancel audit) or cancelled (nothing queued, one cancel audit row), never both; every
answer is 200 or a clear 409."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.merchants.models import Charge
from tests.concurrency import at_once
from tests.merchants.conftest import assert_error, set_balance
from tests.merchants.test_charge_cancel import _cancel_audits, _cancel_url
from tests.merchants.test_pay_charge_race import _bodies, _pay_audits, _qr_charge, _transfers


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    app.extensions["limiter"].enabled = False  # the database's guards must hold by themselves
    return app


@pytest.mark.parametrize("round_", range(2))
def test_cancel_and_pay_at_once_end_paid_or_cancelled_never_both(app, world, round_):
    set_balance(app, world, world.customer, 500)
    charge = _qr_charge(world, 300, f"cancel-race-{round_}")
    clerks = [world.api(world.clerk) for _ in range(5)]
    customers = [world.api(world.customer) for _ in range(5)]
    calls = []
    for clerk, customer in zip(clerks, customers, strict=True):
        calls.append(lambda api=clerk: api.post(_cancel_url(world, charge)))
        calls.append(lambda api=customer: api.post(f"/api/pay/{charge['code']}"))
    answers = at_once(calls)
    assert all(r.status_code in (200, 409) for r in answers), _bodies(answers)
    for r in answers:
        if r.status_code == 409:
            assert_error(r, 409)
    with app.app_context():
        row = get_db().session.get(Charge, charge["id"])
        assert row is not None
        status = row.status
    if status == "cancelled":
        assert (_transfers(app), _pay_audits(app), _cancel_audits(app)) == (0, 0, 1)
        assert all(r.status_code == 409 for r in answers[1::2]), _bodies(answers)
    else:
        assert status == "paying", _bodies(answers)
        assert (_transfers(app), _pay_audits(app), _cancel_audits(app)) == (1, 1, 0)
        assert all(r.status_code == 409 for r in answers[0::2]), _bodies(answers)
