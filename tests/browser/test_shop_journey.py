"""Journey 1 in a real browser: a tourist opens the landing page, chooses Sarabetsu, signs up,
pays by card with the built-in TEST MODE provider, waits while it is processing, and finds the
ambassador card in "my collection" with its perk and a ticket QR code (360 px Japanese, then
1280 px English). The platform fixture runs the real worker, outbox and indexer."""

from __future__ import annotations

import time

from scripts.demo_data import load_demo_data
from tests.pages import assert_fits_the_phone


def _wait_for_listings(page, base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = page.request.get(base + "/api/shop/towns/sarabetsu/listings").json()
        if all(li["open"] for li in body["collections"][0]["listings"]):
            return
        time.sleep(0.5)
    raise AssertionError("the demo listings were not created on chain in time")


def test_tourist_buys_an_ambassador_card_by_card_and_sees_it_with_a_ticket_qr(
    app, platform, browser, screenshot
):
    load_demo_data(app)
    base = platform.url
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    try:
        _wait_for_listings(page, base)
        page.goto(base + "/")
        page.get_by_role("link", name="更別村").click()
        page.wait_for_url(base + "/towns/sarabetsu")
        assert "カード払い 5,000 円" in page.content() and "村のイベント入場" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "shop-ja-360")

        page.get_by_role("link", name="新規登録").first.click()
        page.fill("#email", "tourist@example.com")
        page.fill("#password", "correct horse battery")
        page.locator("form button[type=submit]").first.click()
        # Signed up and sent back to the shop it came from (the next= of the link).
        page.wait_for_url(base + "/towns/sarabetsu")
        page.locator("button[data-buy=card]").click()
        page.wait_for_url("**/shop/test-checkout/**")
        assert "テストモード" in page.content()
        screenshot(page, "checkout-ja-360")
        page.get_by_role("button", name="支払う（テスト）").click()
        page.wait_for_url("**/shop/orders/**")
        assert page.locator(".status").count() == 1
        screenshot(page, "processing-ja-360")
        page.locator(".status-completed").wait_for(timeout=30_000)
        screenshot(page, "done-ja-360")
        # The order's facts, its receipt (領収書) and the purchase history fit a phone.
        assert "5,000 円" in page.locator(".order-facts").inner_text()
        assert "日本時間" in page.locator(".order-facts").inner_text()
        page.get_by_test_id("receipt-link").click()
        page.wait_for_url("**/receipt")
        assert "領収書" in page.content() and "更別村" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "receipt-ja-360")
        page.goto(base + "/me/purchases")
        assert page.get_by_test_id("purchase").count() == 1
        assert_fits_the_phone(page)
        screenshot(page, "purchases-ja-360")
        page.go_back()
        page.go_back()
        page.locator(".status-completed").wait_for()

        page.get_by_role("link", name="マイコレクション").first.click()
        page.wait_for_url(base + "/my/collection")
        assert "更別村アンバサダーカード #1" in page.content()
        assert "残り 3 回（全 3 回）" in page.content()
        assert page.locator(".qr svg").count() == 1
        assert_fits_the_phone(page)
        screenshot(page, "my-collection-ja-360")

        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(base + "/lang/en?next=/my/collection")
        assert "Sarabetsu Ambassador Card #1" in page.content()
        assert "3 of 3 uses left" in page.content() and "Ticket QR code" in page.content()
        screenshot(page, "my-collection-en-1280")
        page.goto(base + "/towns/sarabetsu")
        assert "5,000 yen by card" in page.content() and "Remaining: 149" in page.content()
        screenshot(page, "shop-en-1280")
    finally:
        context.close()


INJECTED_WALLET = """
window.ethereum = {
  isTestWallet: true,
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts" || method === "eth_accounts") {
      return [await window.__walletAddress()];
    }
    if (method === "personal_sign") { return await window.__walletSign(params[0]); }
    if (method === "eth_signTypedData_v4") { return await window.__walletSignTyped(params[1]); }
    throw new Error("unsupported method " + method);
  },
};
"""


def test_wallet_user_signs_in_with_siwe_and_gets_a_card_in_my_collection(
    app, platform, browser, screenshot
):
    """An injected EIP-1193 provider backed by a test key (signing happens in Python)."""
    import json

    from eth_account import Account
    from eth_account.messages import encode_defunct

    wallet = Account.from_key("0x" + "42" * 32)
    load_demo_data(app)
    base = platform.url
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.expose_function("__walletAddress", lambda: wallet.address)
    context.expose_function(
        "__walletSign",
        lambda hex_msg: (
            "0x"
            + wallet.sign_message(encode_defunct(hexstr=hex_msg)).signature.hex().removeprefix("0x")
        ),
    )
    context.expose_function(
        "__walletSignTyped",
        lambda data: (
            "0x"
            + wallet.sign_typed_data(full_message=json.loads(data))
            .signature.hex()
            .removeprefix("0x")
        ),
    )
    context.add_init_script(INJECTED_WALLET)
    page = context.new_page()
    try:
        _wait_for_listings(page, base)
        page.goto(base + "/login?next=/towns/sarabetsu")
        page.get_by_role("button", name="Sign in with your wallet").click()
        page.wait_for_url(base + "/towns/sarabetsu")
        screenshot(page, "wallet-shop-en-1280")
        page.locator("button[data-buy=card]").click()
        page.wait_for_url("**/shop/test-checkout/**")
        page.get_by_role("button", name="Pay (test)").click()
        page.locator(".status-completed").wait_for(timeout=30_000)
        page.goto(base + "/my/collection")
        assert "Sarabetsu Ambassador Card #1" in page.content()
        assert page.locator(".qr svg").count() == 1
        screenshot(page, "wallet-my-collection-en-1280")

        # Test yen to the wallet's own address, then a purchase signed in the wallet.
        page.goto(base + "/towns/sarabetsu")
        page.get_by_role("button", name="Get test yen (test mode)").click()
        page.wait_for_url("**/towns/sarabetsu?notice=faucet")
        deadline = time.monotonic() + 30
        while page.get_by_test_id("test-yen-balance").inner_text() != "Your test yen: 10,000":
            assert time.monotonic() < deadline, "the test yen did not arrive"
            time.sleep(0.5)
            page.reload()
        assert page.locator("button[data-buy=stablecoin]").count() == 0  # no built-in account
        screenshot(page, "wallet-test-yen-en-1280")
        page.locator("button[data-buy=wallet]").click()
        page.wait_for_url("**/shop/orders/**")
        assert page.locator(".status").count() == 1
        screenshot(page, "wallet-yen-processing-en-1280")
        page.locator(".status-completed").wait_for(timeout=30_000)
        page.get_by_role("link", name="My collection").first.click()
        page.wait_for_url(base + "/my/collection")
        assert "Sarabetsu Ambassador Card #2" in page.content()
        assert page.locator(".qr svg").count() == 2
        screenshot(page, "wallet-yen-my-collection-en-1280")
        page.goto(base + "/towns/sarabetsu")
        assert page.get_by_test_id("test-yen-balance").inner_text() == "Your test yen: 5,000"
    finally:
        context.close()
