"""A custodial holder gives a card to another person in a real browser (issue 15 §4), on a
360 px phone in Japanese: the giver opens "give or move" from their collection, names the
friend by e-mail and types the password again (a wrong one is refused and sends nothing); the
card is "on its way", then leaves the giver's collection once the chain confirms; the friend
signs in and sees the card with its perks and the uses left (and a use the venue marked before
the gift stays used). The friend's collection in English too."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from backend.accounts.models import User
from backend.core.db import get_db, utcnow
from backend.shop.models import Gift
from tests.pages import LiveServer, assert_fits_the_phone, wait_for_path
from tests.shop.shop_helpers import PASSWORD, VENUE, Api, bought_card, drive
from tests.shop.shop_helpers import shop_app as shop_app  # noqa: F401 - the fixture


def _phone(browser: Any, base: str, email: str, lang: str = "ja") -> Any:
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, locale="ja-JP" if lang == "ja" else "en-US"
    )
    page = context.new_page()
    page.goto(f"{base}/lang/{lang}?next=/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, "/me")
    return page


def _fits(page: Any) -> None:
    assert_fits_the_phone(page)


def _gifts(app: Any) -> list[tuple[str, int | None]]:
    with app.app_context():
        rows = get_db().session.execute(sa.select(Gift.state, Gift.recipient_id)).all()
        return [(str(s), r) for s, r in rows]


def test_a_holder_gives_a_card_by_email_and_the_friend_sees_it_with_its_perks(
    shop_app, w3, browser, screenshot
):
    app = shop_app
    _fan, token = bought_card(app, w3)
    # The venue marks one use before the gift: the uses left go with the card.
    venue = Api(app.test_client())
    login = venue.post("/api/auth/login", {"email": VENUE[0], "password": VENUE[1]})
    assert login.status_code == 200
    used = venue.post(
        "/api/shop/towns/sarabetsu/checkin",
        {"code": token["ticket_code"], "perk_id": 1, "idempotency_key": "gift-use-1"},
    )
    assert used.status_code == 201, used.get_json()
    drive(app, w3)
    friend = Api(app.test_client())
    friend_id = friend.signup("friend@example.com")["user"]["id"]
    with app.app_context():  # the friend confirmed their address (the mail link)
        s = get_db().session
        s.get(User, friend_id).email_verified_at = utcnow()
        s.commit()

    with LiveServer(app) as server:
        giver = _phone(browser, server.url, "fan@example.com")
        try:
            giver.goto(f"{server.url}/my/collection")
            card = giver.locator("section.token")
            assert card.locator('[data-perk="1"]').inner_text().endswith("残り 2 回（全 3 回）")
            giver.locator(f'[data-give="{token["collection_id"]}-{token["token_id"]}"]').click()
            wait_for_path(
                giver, f"/my/collection/{token['collection_id']}/{token['token_id']}/give"
            )
            _fits(giver)
            giver.fill("#recipient", "friend@example.com")
            giver.fill("#password", "not my password")
            giver.get_by_role("button", name="カードを送る").click()
            error = giver.get_by_test_id("give-error")
            assert error.inner_text() == "パスワードが正しくありません。"
            assert _gifts(app) == []
            screenshot(giver, "wrong-password")

            giver.fill("#recipient", "friend@example.com")
            giver.fill("#password", PASSWORD)
            screenshot(giver, "give-form")
            giver.get_by_role("button", name="カードを送る").click()
            wait_for_path(giver, "/my/collection")
            notice = giver.locator("[data-gift]").first.inner_text()
            assert re.search(r"#\d+ を新しい持ち主に送っています。", notice), notice
            assert _gifts(app) == [("queued", friend_id)]
            _fits(giver)
            screenshot(giver, "on-its-way")

            drive(app, w3)  # sent, confirmed and indexed
            giver.reload()
            assert giver.locator("section.token").count() == 0
            assert giver.locator("[data-gift]").count() == 0
            assert _gifts(app) == [("done", friend_id)]
        finally:
            giver.context.close()

        for lang, uses in (("ja", "残り 2 回（全 3 回）"), ("en", "2 of 3 uses left")):
            page = _phone(browser, server.url, "friend@example.com", lang)
            try:
                page.goto(f"{server.url}/my/collection")
                card = page.locator("section.token")
                assert card.count() == 1
                heading = card.locator("h2").inner_text()
                assert heading.endswith(f"#{token['token_id']}")
                assert card.locator('[data-perk="1"]').inner_text().endswith(uses)
                assert card.locator(".qr svg").count() == 1  # their own ticket code
                _fits(page)
                screenshot(page, f"friend-{lang}")
            finally:
                page.context.close()
