"""Printed resident cards are per (resident, town): another town's card never overwrites this
town's; a second card in the same town replaces the old one only when staff say so (the old
code stops working, audit-logged); and each card pays only its own town's shops."""

from __future__ import annotations

import re

import sqlalchemy as sa
from werkzeug.security import check_password_hash

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import CardPinFailures, ResidentCard
from tests.merchants.conftest import assert_error, pay_by_card, set_balance, snapshot


def _form(api, url: str, data: dict[str, str], lang: str = "en"):
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(
        url, data={"csrf_token": api.token, **data}, headers={"Accept-Language": lang}
    )


def _issue(api, slug: str, email: str, **extra: str) -> tuple[str, str]:
    resp = _form(api, f"/towns/{slug}/cards", {"email": email, **extra})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    code = re.search(r'data-testid="card-code">(C[A-Z0-9]+)<', html).group(1)
    pin = re.search(r'data-testid="card-pin">(\d{6})<', html).group(1)
    return code, pin


def _cards(app, world) -> dict[int, tuple[str, str]]:
    with app.app_context():
        rows = get_db().session.scalars(
            sa.select(ResidentCard).where(ResidentCard.user_id == world.user(world.customer).id)
        )
        return {c.town_id: (c.card_code, c.pin_hash) for c in rows}


def _pay(world, clerk: str, merchant_id: int, code: str, pin: str, key: str):
    return pay_by_card(world.api(clerk), merchant_id, code, pin, key)


def test_each_town_issues_its_own_card_and_each_pays_only_its_towns_shops(app, world):
    set_balance(app, world, world.customer, 500)
    set_balance(app, world, world.customer, 500, world.other_town_id)  # toyako's own points
    here_code, here_pin = _issue(world.api(world.staff), "sarabetsu", world.customer)
    there_code, there_pin = _issue(world.api(world.other_staff), "toyako", world.customer)

    cards = _cards(app, world)
    assert cards.keys() == {world.town_id, world.other_town_id}
    assert cards[world.town_id][0] == here_code and cards[world.other_town_id][0] == there_code
    assert check_password_hash(cards[world.town_id][1], here_pin)  # untouched by the other town

    r = _pay(world, world.clerk, world.merchant_id, here_code, here_pin, "card-here-1")
    assert r.status_code == 200 and r.get_json()["charge"]["method"] == "card"
    r = _pay(world, world.other_clerk, world.other_merchant_id, there_code, there_pin, "card-th-1")
    assert r.status_code == 200 and r.get_json()["charge"]["method"] == "card"

    # A card at another town's shop: refused, nothing changed, no PIN try counted.
    before = snapshot(app)
    r = _pay(world, world.other_clerk, world.other_merchant_id, here_code, here_pin, "card-x-1")
    assert_error(r, 400, "card_other_town")
    r = _pay(world, world.clerk, world.merchant_id, there_code, "000000", "card-x-2")
    assert_error(r, 400, "card_other_town")
    assert snapshot(app) == before
    with app.app_context():
        tries = get_db().session.scalars(sa.select(CardPinFailures.failures)).all()
        assert set(tries) <= {0}


def test_a_second_card_in_the_same_town_replaces_the_old_one_only_explicitly(app, world):
    set_balance(app, world, world.customer, 500)
    staff = world.api(world.staff)
    old_code, old_pin = _issue(staff, "sarabetsu", world.customer)
    there_code, _ = _issue(world.api(world.other_staff), "toyako", world.customer)
    cards = _cards(app, world)

    # Issuing again: refused with an offer to replace; nothing changed.
    before = snapshot(app)
    resp = _form(staff, "/towns/sarabetsu/cards", {"email": world.customer}, lang="ja")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409 and 'data-testid="replace-card"' in html
    assert "このまちのカードをすでに持っています" in html and 'data-testid="card-pin"' not in html
    assert 'name="replace" value="1"' in html
    assert snapshot(app) == before and _cards(app, world) == cards

    # Replacing it explicitly: a new code and PIN; the old code stops working.
    new_code, new_pin = _issue(staff, "sarabetsu", world.customer, replace="1")
    assert new_code != old_code
    after = _cards(app, world)
    assert after[world.town_id][0] == new_code
    assert after[world.other_town_id] == cards[world.other_town_id]  # the other town's card
    with app.app_context():
        audit = get_db().session.scalars(sa.select(AuditLog).order_by(AuditLog.id.desc())).first()
        assert audit.action == "card.replace"
        assert audit.actor == f"user:{world.user(world.staff).id}"
        assert audit.details["replaced_card_code"] == old_code
        assert audit.details["card_code"] == new_code and new_pin not in str(audit.details)

    r = _pay(world, world.clerk, world.merchant_id, old_code, old_pin, "card-old-1")
    assert_error(r, 400, "customer_code_invalid")
    r = _pay(world, world.clerk, world.merchant_id, new_code, new_pin, "card-new-1")
    assert r.status_code == 200
    assert there_code == _cards(app, world)[world.other_town_id][0]
