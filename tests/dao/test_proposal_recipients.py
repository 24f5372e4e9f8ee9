"""Staff name a payout's recipient as a person or a shop, not "0x and 40 hex digits" (issue 15
§5): the proposal form (and its JSON API) takes an e-mail of an account that confirmed it, a
customer code, a printed card code, one of the town's shops by its name, or still an address;
the resolver is issuing's (backend/issuing/recipients.py), as /api/v1 issuances use it. An
unknown person is a clear message, in Japanese and English, and nothing is changed."""

from __future__ import annotations

import re
import uuid
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.core.db import get_db, utcnow
from backend.dao.models import DaoProposal
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from tests.dao.conftest import SLUG, counts, make_staff, signup

EN = {"Accept-Language": "en"}
JA = {"Accept-Language": "ja"}
FORM = f"/towns/{SLUG}/dao/new"


@pytest.fixture
def staff(manual_outbox: Flask, town: Town, dao_chain: Any) -> Any:
    dao_chain.fund_treasury(100_000)
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _confirmed(app: Flask, email: str) -> tuple[int, str]:
    """A member whose e-mail is confirmed: (user id, built-in address)."""
    _api, uid, address = signup(app, email)
    with app.app_context():
        s = get_db().session
        s.get(User, uid).email_verified_at = utcnow()
        s.commit()
    return uid, address


def _post_form(staff: Any, recipient: str, headers: dict[str, str] = EN) -> Any:
    html = staff.client.get(FORM).get_data(as_text=True)
    fields = {
        name: re.search(rf'name="{name}" value="([^"]+)"', html).group(1)
        for name in ("csrf_token", "idempotency_key")
    }
    form = {
        **fields,
        "title_en": "Stage for the festival",
        "chamber": "card",
        "token": "yen",
        "amount": "1000",
        "recipient": recipient,
    }
    return staff.client.post(FORM, data=form, headers=headers)


def _recipient_of(app: Flask, location: str) -> str:
    pid = int(location.rsplit("/", 1)[1])
    with app.app_context():
        return get_db().session.get(DaoProposal, pid).recipient


def test_the_form_takes_an_email_a_code_a_card_a_shop_or_an_address(manual_outbox, town, staff):
    app = manual_outbox
    form = staff.client.get(FORM, headers=JA).get_data(as_text=True)
    assert "支払いを受け取る人・店" in form and "0x…" in form  # addresses still work
    _uid, member_address = _confirmed(app, "hanako@example.com")

    resp = _post_form(staff, " Hanako@Example.com ")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert _recipient_of(app, resp.headers["Location"]) == member_address
    page = staff.client.get(resp.headers["Location"], headers=JA).get_data(as_text=True)
    assert "このサービスに登録している個人" in page

    # A customer code (the one on the member's phone) and a printed card of the town.
    coder, _cid, coder_address = signup(app, "taro@example.com")
    code = re.search(r"P\d{12}", coder.client.get("/points/code").get_data(as_text=True))
    assert code, "the member's customer code"
    resp = _post_form(staff, code.group(0))
    assert _recipient_of(app, resp.headers["Location"]) == coder_address
    with app.app_context():
        s = get_db().session
        staff_user = s.scalar(sa.select(User).where(User.id != _cid).order_by(User.id))
        card = merchant_service().issue_card(
            staff_user, s.get(Town, town.id), s.get(User, _cid), "482916"
        )
        card_code = card.card_code
    resp = _post_form(staff, card_code.lower())
    assert _recipient_of(app, resp.headers["Location"]) == coder_address

    # One of the town's shops by its name (suggested in the form), Japanese or English.
    with app.app_context():
        s = get_db().session
        shop = merchant_service().register_merchant(
            staff_user, s.get(Town, town.id), "更別村農産物直売所", "Sarabetsu Farm Market"
        )
        shop_address = shop.address
    form = staff.client.get(FORM).get_data(as_text=True)
    assert '<option value="Sarabetsu Farm Market">' in form or "更別村農産物直売所" in form
    for name in ("更別村農産物直売所", "sarabetsu farm market"):
        resp = _post_form(staff, name)
        assert resp.status_code == 302, resp.get_data(as_text=True)
        assert _recipient_of(app, resp.headers["Location"]) == shop_address
    page = staff.client.get(resp.headers["Location"], headers=EN).get_data(as_text=True)
    assert re.search(r'id="dao-recipient" data-kind="shop">Sarabetsu Farm Market', page)

    # An address, for those who have one.
    outside = "0x" + "ab" * 20
    resp = _post_form(staff, outside)
    assert _recipient_of(app, resp.headers["Location"]).lower() == outside


@pytest.mark.parametrize(
    ("recipient", "en", "ja"),
    [
        (
            "nobody@example.com",
            "Nobody with an account has confirmed this e-mail address.",
            "このメールアドレスを確認済みのアカウントはありません。",
        ),
        (
            "unconfirmed@example.com",
            "Nobody with an account has confirmed this e-mail address.",
            "このメールアドレスを確認済みのアカウントはありません。",
        ),
        ("CZZZZZZZZZZ", "No printed card of this town has this code.", None),
        ("P000000000000", "This customer code is not valid or has expired.", None),
        (
            "The bakery",
            "Give an email address, a customer code, a card code, a shop's name or an address.",
            "メールアドレス、お客様コード、カード番号、店名、またはアドレスを入力してください。",
        ),
        ("0x1234", "This is not a valid address (check every character).", None),
        ("", "The recipient is missing.", None),
    ],
)
def test_an_unknown_recipient_is_a_clear_message_and_changes_nothing(
    manual_outbox, town, staff, recipient, en, ja
):
    app = manual_outbox
    signup(app, "unconfirmed@example.com")  # signed up, address not confirmed
    before = counts(app)
    resp = _post_form(staff, recipient)
    assert resp.status_code == 400
    html = unescape(resp.get_data(as_text=True))
    assert en in html and 'aria-invalid="true"' in html
    if ja:
        assert ja in unescape(_post_form(staff, recipient, JA).get_data(as_text=True))
    assert counts(app) == before


def test_the_json_api_takes_an_email_and_refuses_an_unknown_one(manual_outbox, town, staff):
    app = manual_outbox
    _uid, address = _confirmed(app, "jiro@example.com")
    body = {"amount": 500, "title_ja": "ベンチ", "idempotency_key": uuid.uuid4().hex}
    resp = staff.post(f"/api/towns/{SLUG}/dao/proposals", {**body, "recipient": "jiro@example.com"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["proposal"]["recipient"] == address
    before = counts(app)
    staff.client.set_cookie("lang", "en")
    resp = staff.post(
        f"/api/towns/{SLUG}/dao/proposals",
        {**body, "idempotency_key": uuid.uuid4().hex, "recipient": "ghost@example.com"},
    )
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["details"]["field"] == "recipient" and "confirmed" in error["message"]
    assert counts(app) == before
