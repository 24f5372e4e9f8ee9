"""Event check-ins on the whole back end (real anvil, a real Celery worker on Redis, beat's
tasks ticking): an attendee who scanned the QR and one checked in by venue staff get their
points on chain once, a second event gives the first attendee its own points, and the
attendee's page turns from "on their way" to "arrived" by itself. The test waits for the
state the database and the page show, never for a fixed time."""

from __future__ import annotations

import time

from backend.accounts.models import User
from backend.core.db import get_db
from backend.events.models import EventCheckIn
from backend.merchants.services import merchant_service
from backend.points.services import points_service
from backend.regions.models import Town
from tests.conftest import BeatTicker
from tests.events.conftest import check_in_token, form, make_event
from tests.issuing.conftest import chain_balance

ADMIN = "/towns/sarabetsu/admin/events"


def _states(app) -> list[str]:
    with app.app_context():
        rows = get_db().session.query(EventCheckIn).order_by(EventCheckIn.id).all()
        states = points_service().grant_states([r.points_grant_id for r in rows])
        return [states[r.points_grant_id] for r in rows]


def _wait_confirmed(app, n: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = _states(app)
        if len(states) == n and all(s == "confirmed" for s in states):
            return
        assert "failed" not in states, states
        time.sleep(0.2)  # polling the state; the worker and beat do the work
    raise AssertionError(f"grants not confirmed in time: {_states(app)}")


def test_check_ins_arrive_on_chain_once(app, town, w3, celery_worker):
    first = make_event(app, town.town_id, points=300)
    second = make_event(app, town.town_id, points=50, name_en="Evening talk")
    customer = town.api("customer")
    for event_id in (first, second):
        token = check_in_token(app, town.town_id, event_id)
        resp = form(customer, f"/towns/sarabetsu/events/{event_id}/check-in", {"t": token})
        assert resp.status_code == 303
    with app.app_context():
        newbie = get_db().session.get(User, town.user_id("newbie"))
        code, _expires = merchant_service().issue_customer_code(newbie)
    resp = form(town.api("verifier"), f"{ADMIN}/{first}/check-in", {"code": code})
    assert resp.status_code == 303
    token = check_in_token(app, town.town_id, first)
    page = customer.get(f"/towns/sarabetsu/events/{first}/check-in?t={token}")
    assert 'data-points-state="pending"' in page.get_data(as_text=True)

    with BeatTicker(app):
        _wait_confirmed(app, 3)
    page = customer.get(f"/towns/sarabetsu/events/{first}/check-in?t={token}")
    body = page.get_data(as_text=True)
    assert 'data-points-state="confirmed"' in body and 'http-equiv="refresh"' not in body
    with app.app_context():
        s = get_db().session
        customer_address = s.get(User, town.user_id("customer")).addresses[0].address
        newbie_address = s.get(User, town.user_id("newbie")).addresses[0].address
        contract = s.get(Town, town.town_id).points_address
    assert chain_balance(w3, contract, customer_address) == 350
    assert chain_balance(w3, contract, newbie_address) == 300
    # Checking in again after the points arrived: still once.
    again = form(customer, f"/towns/sarabetsu/events/{first}/check-in", {"t": token})
    assert again.status_code == 409
    assert len(_states(app)) == 3
