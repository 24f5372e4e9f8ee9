"""Issue 15 §7 "a charge the customer cannot afford waits forever": the shop's staff cancel a
pending charge (once, audited; not someone else's, not one being paid), the charge screen counts
down to the charge's expiry, and the customer is told plainly when their points are not enough.
The race of cancel and pay: test_charge_cancel_race.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import Charge
from tests.merchants.conftest import assert_error, set_balance, snapshot
from tests.merchants.test_pay_charge_race import _qr_charge


def _cancel_url(world: Any, charge: dict[str, Any]) -> str:
    return f"/api/merchants/{world.merchant_id}/charges/{charge['id']}/cancel"


def _cancel_audits(app: Flask) -> int:
    with app.app_context():
        return int(
            get_db().session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "merchants.charge_cancel")
            )
        )


def test_staff_cancel_a_pending_charge_once_and_it_cannot_be_paid(app, world):
    set_balance(app, world, world.customer, 500)
    charge = _qr_charge(world, 300, "cancel-1")
    clerk = world.api(world.clerk)
    first = clerk.post(_cancel_url(world, charge))
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["charge"]["status"] == "cancelled"
    again = clerk.post(_cancel_url(world, charge))  # idempotent: the same answer, one audit row
    assert again.status_code == 200 and again.get_json()["charge"]["status"] == "cancelled"
    assert _cancel_audits(app) == 1
    before = snapshot(app)
    paid = world.api(world.customer).post(f"/api/pay/{charge['code']}")
    assert_error(paid, 409, "charge_not_payable")
    assert snapshot(app) == before


@pytest.mark.parametrize("who", ["customer", "other_clerk"])
def test_someone_else_cannot_cancel_and_nothing_changes(app, world, who):
    charge = _qr_charge(world, 300, "cancel-2")
    before = snapshot(app)
    resp = world.api(getattr(world, who)).post(_cancel_url(world, charge))
    assert resp.status_code in (403, 404), resp.get_data(as_text=True)
    assert snapshot(app) == before


def test_a_charge_being_paid_cannot_be_cancelled(app, world):
    set_balance(app, world, world.customer, 500)
    charge = _qr_charge(world, 300, "cancel-3")
    assert world.api(world.customer).post(f"/api/pay/{charge['code']}").status_code == 200
    before = snapshot(app)
    resp = world.api(world.clerk).post(_cancel_url(world, charge))
    assert_error(resp, 409, "charge_not_cancellable")
    assert snapshot(app) == before


def test_the_charge_screen_counts_down_and_offers_cancel(app, world):
    charge = _qr_charge(world, 300, "cancel-4")
    clerk = world.api(world.clerk)
    page = clerk.get(f"/merchants/{world.merchant_id}/charges/{charge['id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    with app.app_context():
        row = get_db().session.get(Charge, charge["id"])
        assert row is not None
        assert f'data-expires-at="{row.expires_at.isoformat()}"' in html
    assert 'data-testid="cancel-charge"' in html
    assert "<script>" not in html  # no inline script: the countdown is merchants.js (CSP)
    resp = clerk.post(f"/merchants/{world.merchant_id}/charges/{charge['id']}/cancel")
    assert resp.status_code == 303
    html = clerk.get(resp.headers["Location"]).get_data(as_text=True)
    assert re.search(r'data-status-for="cancelled" data-testid="cancelled" >', html)
    assert 'data-testid="cancel-charge"' not in html
    # The customer's page says the shop cancelled it and offers no "pay".
    pay = world.api(world.customer).get(f"/pay/{charge['code']}").get_data(as_text=True)
    assert 'data-testid="cancelled"' in pay and 'class="primary"' not in pay


def test_the_customer_is_told_when_their_points_are_not_enough(app, world):
    set_balance(app, world, world.customer, 120)
    charge = _qr_charge(world, 300, "cancel-5")
    html = world.api(world.customer).get(f"/pay/{charge['code']}").get_data(as_text=True)
    assert 'data-testid="not-enough"' in html
    assert "120" in html and "300" in html
    assert 'class="primary"' not in html  # no "pay" button that can only fail
