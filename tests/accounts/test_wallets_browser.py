"""Your wallets in a real browser (docs/adr/0027): on a 360 px phone in Japanese, a person with a
password signs with their own wallet (an injected EIP-1193 provider backed by a test key) on the
log-in page, is sent to Your wallets and links it there with the password; a password reset by
mail pauses its sign-in, the reset page says so, and the person confirms the wallet again with
the new password. Every page fits the phone at 200 % text."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.accounts.conftest import MASTER_KEY, PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path

WALLET = Account.from_key(b"\x45" * 32)
NEW_PASSWORD = "a brand new password"
# The wallet the page meets: accounts and personal_sign only, signed in Python.
INJECTED_WALLET = """
window.ethereum = {
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts" || method === "eth_accounts") {
      return [await window.__walletAddress()];
    }
    if (method === "personal_sign") { return await window.__walletSign(params[0]); }
    throw new Error("unsupported method " + method);
  },
};
"""


@pytest.fixture
def app(make_app, deployed, smtp_server):
    return make_app(master_key=MASTER_KEY, **smtp_server.settings)


def _log_in(page, base: str, password: str) -> None:
    page.goto(f"{base}/login?next=/me/wallets")
    page.fill("#email", "hana@example.com")
    page.fill("#password", password)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, "/me/wallets")


def test_link_a_wallet_then_confirm_it_after_a_reset_on_a_phone(
    live_server, browser, mailbox, screenshot
):
    base = live_server.url
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    phone.expose_function("__walletAddress", lambda: WALLET.address)
    phone.expose_function(
        "__walletSign",
        lambda hex_msg: WALLET.sign_message(encode_defunct(hexstr=hex_msg)).signature.to_0x_hex(),
    )
    phone.add_init_script(INJECTED_WALLET)
    row = f'[data-address="{WALLET.address}"]'
    try:
        page = phone.new_page()
        page.goto(f"{base}/signup?next=/me")
        page.fill("#email", "hana@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/me")
        assert page.get_by_test_id("wallets-link").count() == 0  # no crypto words yet
        # Signed in, "sign in with your wallet" cannot link it without the password: the page
        # that asks for it opens.
        page.goto(f"{base}/login")
        page.locator("[data-siwe-button]").click()
        wait_for_path(page, "/me/wallets")
        assert page.get_by_test_id("no-wallets").is_visible()
        assert not page.locator("[data-no-wallet]").is_visible()  # a wallet is there
        assert_fits_the_phone(page, 360)
        screenshot(page, "1-no-wallet-ja-360")

        page.fill("#link-password", PASSWORD)
        page.locator("[data-wallet-button]").click()
        page.get_by_test_id("wallet-notice").wait_for()
        assert WALLET.address in page.get_by_test_id("wallet-notice").inner_text()
        assert page.locator(row).get_attribute("data-paused") == "no"
        assert_fits_the_phone(page, 360)
        screenshot(page, "2-linked-ja-360")
        page.goto(f"{base}/me")
        assert page.get_by_test_id("wallets-link").is_visible()

        # A reset by mail pauses the wallet's sign-in; the reset page lists it.
        page.goto(f"{base}/forgot-password")
        page.fill("#email", "hana@example.com")
        page.locator("form.form button[type=submit]").click()
        reset = mailbox.wait_for("hana@example.com", count=2)  # 1st: verification
        page.goto(base + urlsplit(reset.link()).path)
        page.fill("#password", NEW_PASSWORD)
        page.locator("form.form button[type=submit]").click()
        paused = page.get_by_test_id("paused-wallets")
        assert WALLET.address in paused.inner_text()
        assert "心当たりのないウォレットは外してください" in paused.inner_text()
        assert_fits_the_phone(page, 360)
        screenshot(page, "3-reset-lists-the-paused-wallet-ja-360")

        _log_in(page, base, NEW_PASSWORD)
        assert page.locator(row).get_attribute("data-paused") == "yes"
        assert_fits_the_phone(page, 360)
        screenshot(page, "4-paused-ja-360")
        # The old password does not confirm it; the new one does.
        page.fill("#link-password", PASSWORD)
        page.locator("[data-wallet-button]").click()
        page.get_by_test_id("wallet-error").wait_for()
        assert "パスワードが正しくありません" in page.get_by_test_id("wallet-error").inner_text()
        assert_fits_the_phone(page, 360)
        page.fill("#link-password", NEW_PASSWORD)
        page.locator("[data-wallet-button]").click()
        page.get_by_test_id("wallet-notice").wait_for()
        assert page.locator(row).get_attribute("data-paused") == "no"
        screenshot(page, "5-confirmed-ja-360")
    finally:
        phone.close()
