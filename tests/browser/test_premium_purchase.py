"""Points bought with a premium in a real browser (chromium, 360 px, Japanese) on the whole
platform (real Celery worker, beat ticking, outbox, indexer, anvil): a signed-in resident opens
the town's points sale from the points page, pays ¥1,000 with the built-in test card, waits on
the purchase page while the points are issued, and finds the bought lot of 1,200 premium points
on the points page with its last day of use, labelled Japan time, 180 days after the issue."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from backend.accounts.models import CUSTODIAL, Address
from backend.accounts.roles import STAFF
from backend.core.db import get_db
from backend.points.lots import jst_day
from backend.points.models import PointsEntry
from backend.premium.models import PremiumPurchase
from tests.pages import assert_fits_the_phone, wait_for_path
from tests.premium.conftest import PASSWORD, add_town, add_user, set_offer


def test_a_resident_buys_points_with_a_premium_by_test_card_and_sees_the_lot_with_its_expiry(
    app, deployed, w3, platform, browser, screenshot
):
    town_id = add_town(app, deployed)
    set_offer(app, town_id, add_user(app, "staff@example.com", town_id, STAFF))
    buyer_id = add_user(app, "resident@example.com")
    base = platform.url
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(base + "/points")
        page.fill("#email", "resident@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/points")
        page.get_by_test_id("buy-sarabetsu").click()
        wait_for_path(page, "/towns/sarabetsu/points/buy")
        assert "お支払いより 20% 多いポイント" in page.content()
        assert page.get_by_test_id("yen-1000").is_checked()  # ¥1,000 → 1,200 points
        assert "1,000 円 → 1,200 ポイント" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "buy-ja-360")

        page.get_by_role("button", name="カードで支払う").click()
        page.wait_for_url("**/points/buy/test-checkout/pp_*")
        assert "テストモード" in page.content() and "1,000 円" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "checkout-ja-360")
        page.get_by_role("button", name="支払う（テスト）").click()
        page.wait_for_url("**/points/purchases/pp_*")
        screenshot(page, "processing-ja-360")
        # The page reloads itself while the worker issues the points and the indexer sees them.
        page.locator(".purchase-issued").wait_for(timeout=90_000)
        assert "1,200 ポイントがアカウントに追加されました" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "issued-ja-360")

        page.locator("a.button-link[href='/points']").click()
        wait_for_path(page, "/points")
        row = page.locator("table.lots tbody tr", has_text="プレミアムポイント")
        assert row.count() == 1
        assert "1,200" in row.inner_text()
        assert "使用期限（日本時間）" in page.locator("table.lots thead").inner_text()
        shown = row.get_by_test_id("expiry").inner_text()
        assert_fits_the_phone(page)
        screenshot(page, "points-ja-360")
    finally:
        context.close()

    # The date shown is the lot's last day: 180 days after the JST day of the block.
    with app.app_context():
        s = get_db().session
        address = s.scalar(
            sa.select(Address.address).where(Address.user_id == buyer_id, Address.kind == CUSTODIAL)
        )
        entry = s.scalar(
            sa.select(PointsEntry).where(
                PointsEntry.holder == address, PointsEntry.reason == "premium"
            )
        )
        status = s.scalar(sa.select(PremiumPurchase.status))
    issued_day = jst_day(w3.eth.get_block(entry.block_number)["timestamp"])
    last_day = dt.date(1970, 1, 1) + dt.timedelta(days=issued_day + 180)
    # The Japanese page writes the day in Japanese (webui/times.py jst_date).
    japanese = f"{last_day.year}年{last_day.month}月{last_day.day}日"
    assert shown == japanese and int(entry.amount) == 1200 and status == "issued"
