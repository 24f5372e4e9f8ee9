"""Journey 2 in a real browser on the whole platform (web, worker, beat, anvil): a customer
signs up and gets welcome points, a shop charges by QR, the customer pays, the shop sees it
paid, redeems, the town settles and the shop sees it paid. Phone (360, Japanese) for the
customer and the town staff, desktop (1280, English) for the shop."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import sqlalchemy as sa

from backend.accounts.models import User
from backend.core.db import get_db, utcnow
from backend.points.services import points_service
from tests.merchants.conftest import PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path


def _wait_for(page, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out on {page.url}"
        time.sleep(0.5)
        page.reload()


def _log_in(page, base: str, email: str, next_path: str) -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, next_path)


def test_pay_at_a_shop_redeem_and_settle(app, world, platform, browser, screenshot):
    base = platform.url
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    desk = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    town = browser.new_context(viewport={"width": 360, "height": 740}, locale="en-GB")
    try:
        # The customer signs up on a phone; the sign-up grants welcome points.
        customer = phone.new_page()
        customer.goto(f"{base}/signup?next=/points")
        customer.fill("#email", "tourist@example.com")
        customer.fill("#password", PASSWORD)
        customer.locator("form.form button[type=submit]").click()
        customer.wait_for_url(f"{base}/points")
        with app.app_context():
            user = get_db().session.scalar(
                sa.select(User).where(User.email == "tourist@example.com")
            )
            # As if the mailed link was followed (tests/accounts/test_mail_flows.py does it).
            user.email_verified_at = utcnow()
            points_service().grant_welcome_points(user, world.town())
        _wait_for(customer, lambda: customer.get_by_test_id("balance").first.inner_text() == "500")
        assert customer.get_by_test_id("expiry").first.inner_text() != "期限なし"
        assert_fits_the_phone(customer)
        screenshot(customer, "1-points-ja-360")

        # The shop charges 300 points and shows a QR.
        shop = desk.new_page()
        _log_in(shop, base, world.clerk, f"/merchants/{world.merchant_id}")
        shop.fill("#amount", "300")
        shop.get_by_role("button", name="Show the payment QR").click()
        shop.wait_for_url(re.compile(r"/charges/\d+$"))
        code = shop.get_by_test_id("charge-code").inner_text()
        assert shop.locator("svg.qr").count() == 1
        screenshot(shop, "2-charge-en-1280")

        # The customer opens the QR's link, sees the shop and the amount, and confirms.
        customer.goto(f"{base}/pay/{code}")
        assert customer.get_by_test_id("shop").inner_text() == "直売所"
        assert customer.get_by_test_id("amount").inner_text().startswith("300")
        screenshot(customer, "3-pay-ja-360")
        customer.get_by_role("button", name=re.compile("300")).click()
        customer.get_by_test_id("paid").wait_for(state="visible", timeout=20_000)

        # The shop's screen turns to "paid" by itself.
        shop.get_by_test_id("paid").wait_for(state="visible", timeout=20_000)
        screenshot(shop, "4-paid-en-1280")

        # The shop redeems the 300 points.
        shop.goto(f"{base}/merchants/{world.merchant_id}")
        assert shop.get_by_test_id("merchant-balance").inner_text() == "300"
        shop.fill("#r-amount", "300")
        shop.get_by_role("button", name="Next: check the amount").click()
        assert shop.get_by_test_id("redeem-yen").inner_text() == "300 yen"
        shop.get_by_role("button", name="Request redemption").click()
        shop.get_by_role("status").wait_for()
        _wait_for(
            shop,
            lambda: "bank transfer" in shop.get_by_test_id("settlement-status").first.inner_text(),
        )
        screenshot(shop, "5-redeemed-en-1280")

        # Town staff settle it with the bank transfer's reference.
        staff = town.new_page()
        _log_in(staff, base, world.staff, "/towns/sarabetsu/settlements")
        staff.get_by_role("button", name="Approve").click()  # below the four-eyes amount: one
        staff.get_by_label("Bank transfer reference").fill("MIZUHO-2026-0001")
        staff.get_by_role("button", name="Mark as paid").click()
        # The form posts and comes back to the same URL: wait for the reference shown as paid.
        staff.locator(".mono", has_text="MIZUHO-2026-0001").wait_for()
        assert_fits_the_phone(staff)
        screenshot(staff, "6-settled-en-360")

        # The shop sees it paid.
        shop.reload()
        assert shop.get_by_test_id("settlement-status").first.inner_text() == "Paid"
        assert "MIZUHO-2026-0001" in shop.content()
        screenshot(shop, "7-shop-sees-paid-en-1280")
        customer.goto(f"{base}/points")
        _wait_for(customer, lambda: customer.get_by_test_id("balance").first.inner_text() == "200")
        screenshot(customer, "8-points-after-ja-360")
    finally:
        for ctx in (phone, desk, town):
            ctx.close()


def test_town_staff_register_a_shop_add_staff_and_issue_a_card_on_a_phone(
    app, world, platform, browser, screenshot
):
    """Town staff on a 360 px phone (Japanese): from the settlement queue to the shops page,
    register a shop (processing until the chain confirms it), add its clerk, issue a card."""
    base = platform.url
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        _log_in(page, base, world.staff, "/towns/sarabetsu/settlements")
        page.get_by_role("link", name="お店とスタッフ").click()
        page.wait_for_url(f"{base}/towns/sarabetsu/shops")
        page.get_by_label("お店の名前（日本語）").fill("パン工房")
        page.get_by_label("お店の名前（英語）").fill("Bakery")
        page.get_by_role("button", name="お店を登録する").click()
        page.wait_for_url(re.compile(r"/towns/sarabetsu/shops\?notice=registered$"))
        shop = page.locator("section.panel", has_text="パン工房")
        status = shop.get_by_test_id("shop-status")
        assert "処理中" in status.inner_text()
        assert_fits_the_phone(page)
        screenshot(page, "staff-1-registering-ja-360")
        # The page switches to "active" by itself once the chain has confirmed it.
        page.wait_for_function(
            "el => el.getAttribute('data-shop-status') === 'active'",
            arg=status.element_handle(),
            timeout=30_000,
        )
        screenshot(page, "staff-2-active-ja-360")

        shop.get_by_label("アカウントのメールアドレスでスタッフを追加").fill(world.neighbour)
        shop.get_by_role("button", name="このお店に追加").click()
        page.wait_for_url(re.compile(r"notice=staff_added$"))
        assert world.neighbour in page.locator("section.panel", has_text="パン工房").inner_text()
        screenshot(page, "staff-3-staff-added-ja-360")

        page.get_by_role("link", name="印刷する住民カード").click()
        page.get_by_label("住民のアカウントのメールアドレス").fill("no-such@example.com")
        page.get_by_role("button", name="カードを発行する").click()
        page.get_by_role("alert").wait_for()  # the form comes back with the error shown
        page.get_by_label("住民のアカウントのメールアドレス").fill(world.customer)
        page.get_by_role("button", name="カードを発行する").click()
        assert re.fullmatch(r"C[A-Z0-9]{10}", page.get_by_test_id("card-code").inner_text())
        assert re.fullmatch(r"\d{6}", page.get_by_test_id("card-pin").inner_text())
        assert_fits_the_phone(page)
        screenshot(page, "staff-4-card-issued-ja-360")
    finally:
        phone.close()
