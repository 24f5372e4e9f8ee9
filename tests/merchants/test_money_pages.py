"""The PIN pad and the customer's history in a real browser on 360 px phones (issue 11 §1, §2):
the resident types the PIN on the pad, the shop's pages never hold it afterwards; every charge
shows in the customer's history at once (Japanese and English)."""

from __future__ import annotations

import re

from tests.merchants.conftest import PASSWORD, set_balance
from tests.pages import assert_fits_the_phone, wait_for_path

PIN = "482916"


def _log_in(page, base: str, email: str, next_path: str) -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, next_path)


def _type_on_pad(page, digits: str) -> None:
    page.locator(".pad-key", has_text="クリア").click()
    for d in digits:
        page.locator(f".pad-key[data-digit='{d}']").click()


def test_pin_pad_and_history_on_phones(app, world, live_server, browser, screenshot):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), PIN
        )
        code = card.card_code
    base = live_server.url
    shop_ctx = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    phone_ctx = browser.new_context(viewport={"width": 360, "height": 740}, locale="en-GB")
    try:
        shop = shop_ctx.new_page()
        desk = f"/merchants/{world.merchant_id}"
        _log_in(shop, base, world.clerk, desk)
        assert shop.locator("#pin").count() == 0  # the desk has no PIN field any more
        form = shop.locator("form[action$='/charge-customer']")
        form.locator("#c-amount").fill("120")
        form.locator("#customer_code").fill(code)
        form.locator("button[type=submit]").click()
        shop.wait_for_url(re.compile(r"/pin-pad/[A-Za-z0-9_-]+$"))
        pad_url = shop.url
        assert shop.get_by_test_id("pad-amount").inner_text().startswith("120")
        assert_fits_the_phone(shop)
        screenshot(shop, "1-pin-pad-ja-360")

        # A wrong PIN: the pad comes back saying so, with nothing typed kept anywhere.
        _type_on_pad(shop, "111111")
        shop.locator(".pad-key.primary").click()
        shop.get_by_test_id("pad-error").wait_for()
        assert "4" in shop.get_by_test_id("pad-error").inner_text()  # tries left
        assert "111111" not in shop.url and "111111" not in shop.content()
        assert shop.get_by_test_id("pad-pin").input_value() == ""
        screenshot(shop, "2-wrong-pin-ja-360")

        # The right PIN, typed by the resident: the shop's page learns "processing", not the PIN.
        _type_on_pad(shop, PIN)
        shop.locator(".pad-key.primary").click()
        shop.wait_for_url(re.compile(rf"{desk}/charges/\d+$"))
        shop.get_by_text("処理しています", exact=False).first.wait_for()
        assert PIN not in shop.content() and PIN not in shop.url
        shop.go_back()  # history leads to the pad again, empty: nothing kept
        if shop.url.startswith(pad_url.split("?")[0]):
            assert PIN not in shop.content()
            if shop.get_by_test_id("pad-pin").count():
                assert shop.get_by_test_id("pad-pin").input_value() == ""
        screenshot(shop, "3-paid-ja-360")

        # The customer sees the card payment in the history at once, then shows a code.
        phone = phone_ctx.new_page()
        _log_in(phone, base, world.customer, "/points")
        charges = phone.get_by_test_id("my-charge")
        assert charges.count() == 1
        assert "120" in charges.first.inner_text() and "printed card" in charges.first.inner_text()
        phone.goto(f"{base}/points/code")
        customer_code = phone.get_by_test_id("customer-code").inner_text()
        assert re.fullmatch(r"P\d{12}", customer_code)
        assert_fits_the_phone(phone)
        screenshot(phone, "4-my-code-en-360")

        shop.goto(f"{base}{desk}")
        form = shop.locator("form[action$='/charge-customer']")
        form.locator("#c-amount").fill("80")
        form.locator("#customer_code").fill(customer_code)
        form.locator("button[type=submit]").click()
        shop.wait_for_url(re.compile(rf"{desk}/charges/\d+$"))

        phone.goto(f"{base}/points")
        texts = [t for t in phone.get_by_test_id("my-charge").all_inner_texts()]
        assert len(texts) == 2 and "80" in texts[0] and "your code" in texts[0]
        assert all("processing" in t for t in texts)
        assert_fits_the_phone(phone)
        screenshot(phone, "5-history-en-360")
    finally:
        shop_ctx.close()
        phone_ctx.close()
