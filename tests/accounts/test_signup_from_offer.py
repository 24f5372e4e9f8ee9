"""Signing up from a shop offer keeps the town: the new person comes back to the offer, and the
town's welcome points wait for the mailed link (issue 15 §7, "Sign-up from an offer")."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from backend.core.db import get_db
from backend.core.models import AuditLog
from scripts.demo_data import load_demo_data
from tests.accounts.conftest import MASTER_KEY
from tests.shop.shop_helpers import drive

PASSWORD = "correct horse battery"


@pytest.fixture
def app(make_app, deployed, smtp_server):
    return make_app(master_key=MASTER_KEY, **smtp_server.settings)


def _welcome_grants(app) -> int:
    with app.app_context():
        return get_db().session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "points.issue", AuditLog.reason == "welcome points")
        )


def _offer_signup_link(html: str) -> str:
    m = re.search(r'<a class="button secondary" href="([^"]+)" data-testid="offer-signup">', html)
    assert m, "the offer has no sign-up button"
    return unescape(m.group(1))


def test_offer_signup_link_keeps_the_town_and_leads_back_to_the_offer(app, w3, mailbox):
    load_demo_data(app)
    drive(app, w3)  # the demo's listings created on chain and indexed: on sale
    client = app.test_client()
    shop = client.get("/towns/sarabetsu").get_data(as_text=True)
    link = _offer_signup_link(shop)
    query = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path == "/signup"
    assert query == {"next": ["/towns/sarabetsu"], "town": ["sarabetsu"]}

    before = _welcome_grants(app)
    form = client.get(link).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    resp = client.post(
        link,
        data={"csrf_token": token, "email": "walkin@example.com", "password": PASSWORD},
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/towns/sarabetsu"

    # The welcome points of Sarabetsu are granted when the mailed link is followed.
    mail = mailbox.wait_for("walkin@example.com")
    assert _welcome_grants(app) == before
    assert client.get(urlsplit(mail.link()).path).status_code == 200
    assert _welcome_grants(app) == before + 1
