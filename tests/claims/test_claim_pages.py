"""Issuing to one person by e-mail from the console when no account has that address: the
issuance goes through, held (a claim and its audit row with the staff as actor), and the page
says for whom. Who may read what waits: town staff only; "on its way" needs a session."""

from __future__ import annotations

import re

import sqlalchemy as sa

from backend.claims.models import HELD, PointsClaim
from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.merchants.conftest import Api

BASE = "/towns/sarabetsu/admin/issue"


def test_one_person_by_an_unknown_address_is_held_from_the_console(app, world):
    client = world.api(world.staff).client
    html = client.get(BASE).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert 'data-testid="claims-waiting"' in html
    r = client.post(
        f"{BASE}/one",
        data={
            "csrf_token": token,
            "key": "held-one-1",
            "recipient": "Visitor@Example.com",
            "amount": "250",
            "programme_id": "3",
            "reason": "Thanks for the help",
        },
    )
    assert r.status_code == 303, r.get_data(as_text=True)
    page = client.get(r.location, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'data-state="confirmed"' in page
    assert "Will be held for visitor@example.com until they sign up and confirm" in page
    with app.app_context():
        s = get_db().session
        claims = s.scalars(sa.select(PointsClaim)).all()
        assert [(c.state, int(c.amount)) for c in claims] == [(HELD, 250)]
        audit = s.scalar(sa.select(AuditLog).where(AuditLog.action == "points.claim.create"))
        staff_id = world.user(world.staff).id
        assert audit is not None and audit.actor == f"user:{staff_id}"
        assert audit.town_id == world.town_id and audit.reason == "Thanks for the help"
    waiting = client.get("/api/towns/sarabetsu/claims").get_json()["waiting"]
    assert waiting["claims"] == 1 and waiting["points"] == 250


def test_what_waits_is_for_the_towns_staff_only(app, world):
    assert world.api(world.customer).get("/api/towns/sarabetsu/claims").status_code == 403
    other_staff = world.api("staff@other.example")
    assert other_staff.get("/api/towns/sarabetsu/claims").status_code == 403
    assert Api(app).get("/api/towns/sarabetsu/claims").status_code == 401
    assert Api(app).get("/api/me/claims").status_code == 401
    assert world.api(world.customer).get("/api/me/claims").get_json() == {"arriving": []}
