"""The account pages reached by mail, in a real browser: a phone (360 px, Japanese) signs up and
confirms its address from the mailed link; a desktop (English) resets a forgotten password.
Mail goes through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.accounts.conftest import MASTER_KEY, PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path


@pytest.fixture
def app(make_app, deployed, smtp_server):
    return make_app(master_key=MASTER_KEY, **smtp_server.settings)


def _path(link: str) -> str:
    return urlsplit(link).path


def _fits(page, width: int) -> None:
    assert_fits_the_phone(page, width)


def test_confirm_the_address_on_a_phone_in_japanese(live_server, browser, mailbox, screenshot):
    base = live_server.url
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        page.goto(f"{base}/signup?next=/me")
        page.fill("#email", "hana@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/me")
        notice = page.get_by_test_id("verify-email")
        assert "メールのリンク" in notice.inner_text()
        _fits(page, 360)
        screenshot(page, "1-me-unconfirmed-ja-360")

        mail = mailbox.wait_for("hana@example.com")
        assert mail.subject == "メールアドレスの確認"
        page.goto(base + _path(mail.link()))
        assert page.get_by_test_id("notice").get_attribute("data-notice") == "verified"
        assert "メールアドレスを確認しました" in page.get_by_test_id("notice").inner_text()
        _fits(page, 360)
        screenshot(page, "2-verified-ja-360")

        page.goto(f"{base}/me")
        assert page.get_by_test_id("email-verified").inner_text() == "(確認済み)"
        assert page.get_by_test_id("verify-email").count() == 0
    finally:
        phone.close()


def test_reset_a_forgotten_password_on_a_desktop_in_english(
    live_server, browser, mailbox, screenshot
):
    base = live_server.url
    desk = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="en-GB")
    try:
        setup = desk.new_page()
        setup.goto(f"{base}/signup?next=/me")
        setup.fill("#email", "fan@example.com")
        setup.fill("#password", PASSWORD)
        setup.locator("form.form button[type=submit]").click()
        wait_for_path(setup, "/me")
        setup.close()

        page = phone.new_page()
        page.goto(f"{base}/login")
        page.get_by_role("link", name="Forgot your password?").click()
        wait_for_path(page, "/forgot-password")
        page.fill("#email", "fan@example.com")
        page.locator("form.form button[type=submit]").click()
        assert page.get_by_test_id("notice").get_attribute("data-notice") == "reset_sent"
        _fits(page, 360)

        mail = mailbox.wait_for("fan@example.com", count=2)
        assert mail.subject == "Reset your password"
        page.goto(base + _path(mail.link()))
        page.fill("#password", "a brand new password")
        page.locator("form.form button[type=submit]").click()
        assert page.get_by_test_id("notice").get_attribute("data-notice") == "password_reset"
        _fits(page, 360)
        screenshot(page, "password-reset-en-360")

        page.goto(f"{base}/login?next=/me")
        page.fill("#email", "fan@example.com")
        page.fill("#password", "a brand new password")
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/me")
    finally:
        phone.close()
        desk.close()
