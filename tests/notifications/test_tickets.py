"""A use of a ticket marked at the venue, on real anvil: its holder is told once per use, in the
app and by mail (the real SMTP server), and the perk's name and the uses left are in the text."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.core.db import get_db, utcnow
from scripts.demo_data import load_demo_data
from tests.notifications.chain_helpers import ADDRESS, listed, run_handlers_again
from tests.notifications.conftest import send_mails, stored
from tests.shop.shop_helpers import VENUE, Api, bought_card, drive

FAN = "fan@example.com"


@pytest.fixture
def shop_app(make_app, deployed, w3, smtp_server):
    """The demo shop with its listings and perks on chain; mail to the real SMTP server."""
    app = make_app(**smtp_server.settings)
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    return app


def _verified_fan(app) -> int:
    with app.app_context():
        s = get_db().session
        fan = s.scalar(sa.select(User).where(User.email == FAN))
        fan.email_verified_at = utcnow()
        fan.locale = "en"
        s.commit()
        return fan.id


def _check_in(venue: Api, code: str, key: str):
    return venue.post(
        "/api/shop/towns/sarabetsu/checkin", {"code": code, "perk_id": 1, "idempotency_key": key}
    )


def test_each_use_of_a_ticket_tells_its_holder_once(shop_app, w3, mailbox):
    app = shop_app
    fan, token = bought_card(app, w3)
    fan_id = _verified_fan(app)
    assert [r for r in stored(app, fan_id)] == []  # buying a card by card is no points' news
    send_mails(app)  # the demo's residents' points, mailed to them: not this test's business
    venue = Api(app.test_client())
    assert (
        venue.post("/api/auth/login", {"email": VENUE[0], "password": VENUE[1]}).status_code == 200
    )
    assert _check_in(venue, token["ticket_code"], "notify-use-1").status_code == 201
    drive(app, w3)
    rows = stored(app, fan_id)
    assert [(r["kind"], r["params"]["uses_left"], r["params"]["token_id"]) for r in rows] == [
        ("ticket_used", 2, token["token_id"])
    ]
    before = len(mailbox.mails)
    assert send_mails(app) == {"sent": 1}
    (mail,) = mailbox.mails[before:]
    assert mail.to == [FAN] and mail.subject == "Ticket used"
    assert "Uses left: 2." in mail.body and not ADDRESS.search(mail.body)

    run_handlers_again(app)  # the PerkUsed handler again: nothing new
    assert stored(app, fan_id) == [{**rows[0], "email": "sent"}]

    assert _check_in(venue, token["ticket_code"], "notify-use-2").status_code == 201
    drive(app, w3)
    assert [r["params"]["uses_left"] for r in stored(app, fan_id)] == [2, 1]
    assert send_mails(app) == {"sent": 1}
    assert len([m for m in mailbox.mails if m.subject == "Ticket used"]) == 2
    items, html = listed(fan.client, "ja")
    assert [i["kind"] for i in items] == ["ticket_used", "ticket_used"]
    assert "残り1回" in items[0]["text"] and "残り2回" in items[1]["text"]
    assert "日本時間" in items[0]["text"]
    assert not ADDRESS.search(html)
