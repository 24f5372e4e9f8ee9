"""Ticket QR codes and venue check-in: holder, uses left, one use marked; refusals."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from backend.core.db import get_db
from backend.regions.models import Town
from backend.shop.models import CheckIn, Collection
from backend.shop.services import shop_service
from tests.shop.shop_helpers import VENUE, Api, bought_card, counts, drive


def _venue(app) -> Api:
    venue = Api(app.test_client())
    resp = venue.post("/api/auth/login", {"email": VENUE[0], "password": VENUE[1]})
    assert resp.status_code == 200
    return venue


def _check_in(venue: Api, code: str, key: str, town: str = "sarabetsu"):
    return venue.post(
        f"/api/shop/towns/{town}/checkin", {"code": code, "perk_id": 1, "idempotency_key": key}
    )


def test_venue_marks_uses_until_used_up_and_the_holder_sees_it(shop_app, w3):
    app = shop_app
    fan, token = bought_card(app, w3)
    venue = _venue(app)
    code = token["ticket_code"]
    seen = venue.post("/api/shop/towns/sarabetsu/checkin/lookup", {"code": code}).get_json()
    assert seen["holder"] == token["holder"] and seen["perks"][0]["uses_left"] == 3
    assert _check_in(venue, code, "use-00000001").status_code == 201
    before = counts(app)
    again = _check_in(venue, code, "use-00000001")  # double submit: the same check-in
    assert again.status_code == 201 and counts(app) == before
    drive(app, w3)
    with app.app_context():
        assert get_db().session.scalar(sa.select(CheckIn.status)) == "done"
    mine = fan.get("/api/shop/my/collection").get_json()["tokens"][0]
    assert mine["perks"][0]["uses_left"] == 2
    assert _check_in(venue, code, "use-00000002").status_code == 201
    assert _check_in(venue, code, "use-00000003").status_code == 201
    before = counts(app)
    used_up = _check_in(venue, code, "use-00000004")
    assert used_up.status_code == 409
    assert used_up.get_json()["error"]["code"] == "used_up"
    assert counts(app) == before


def test_refused_tickets_say_why_and_change_nothing(shop_app, w3):
    app = shop_app
    fan, token = bought_card(app, w3)
    venue = _venue(app)
    with app.app_context():
        s = get_db().session
        coll = s.scalar(
            sa.select(Collection)
            .join(Town)
            .where(Town.slug == "sarabetsu", Collection.slug == "ambassador")
        )
        shop = shop_service()
        expired = shop.ticket_code(
            coll,
            token["token_id"],
            token["holder"],
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2),
        )
        old_holder = shop.ticket_code(coll, token["token_id"], "0x" + "ab" * 20)
        # The partner town of the demo, on its own contracts: its venue staff see a Sarabetsu
        # ticket as another town's.
        toya = s.scalar(sa.select(Town).where(Town.slug == "toyako"))
        from backend.accounts.models import User
        from backend.accounts.roles import VERIFIER, grant_town_role

        grant_town_role(s.scalar(sa.select(User).where(User.email == VENUE[0])), toya.id, VERIFIER)
        s.commit()
    before = counts(app)
    cases = [
        (expired, "sarabetsu", "ticket_expired", 409),
        (old_holder, "sarabetsu", "transferred", 409),
        (token["ticket_code"], "toyako", "other_town", 409),
        ("FT1.garbage.0000", "sarabetsu", "invalid_ticket", 409),
    ]
    for code, town, reason, status in cases:
        resp = _check_in(venue, code, f"refused-{reason}", town)
        assert resp.status_code == status, (reason, resp.get_json())
        assert resp.get_json()["error"]["code"] == reason
        assert resp.get_json()["error"]["message"]
    # Someone who is not a verifier of the town may not check tickets in.
    assert _check_in(fan, token["ticket_code"], "fan-self-checkin").status_code == 403
    # Another person's ticket code cannot be fetched.
    other = Api(app.test_client())
    other.signup("other@example.com")
    resp = other.get(f"/api/shop/tickets/{token['collection_id']}/{token['token_id']}")
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "not_your_ticket"
    assert counts(app) == before
