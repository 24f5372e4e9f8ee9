"""Issue 15 §7 in chromium at 360 px (Japanese): the shop's charge screen counts down to the
charge's expiry (merchants.js, no inline script) and shows "expired" at 0, its cancel button
going with it; a second charge is cancelled from its screen and both sides say so."""

from __future__ import annotations

import datetime as dt
import re

from backend.core.db import get_db
from backend.merchants.models import Charge
from tests.merchants.conftest import PASSWORD
from tests.merchants.test_pay_charge_race import _qr_charge
from tests.pages import assert_fits_the_phone, wait_for_path


def _log_in(page, base: str, email: str, next_path: str) -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, next_path)


def test_the_countdown_reaches_expired_and_cancel_works(app, world, live_server, browser):
    short = _qr_charge(world, 300, "countdown-1")
    other = _qr_charge(world, 200, "countdown-2")
    with app.app_context():  # this one runs out in a few seconds
        row = get_db().session.get(Charge, short["id"])
        row.expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
        get_db().session.commit()
    base = live_server.url
    ctx = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        shop = ctx.new_page()
        path = f"/merchants/{world.merchant_id}/charges/{short['id']}"
        _log_in(shop, base, world.clerk, path)
        left = shop.locator("[data-countdown-left]")
        assert re.fullmatch(r"0:0[0-4]", left.inner_text()), left.inner_text()
        assert shop.get_by_test_id("cancel-charge").is_visible()
        assert_fits_the_phone(shop)
        shop.locator("[data-countdown-expired]").wait_for(state="visible", timeout=15_000)
        assert shop.locator("[data-countdown-expired]").inner_text() == "期限切れ"
        assert not shop.get_by_test_id("cancel-charge").is_visible()

        shop.goto(f"{base}/merchants/{world.merchant_id}/charges/{other['id']}")
        assert re.fullmatch(r"1[45]:\d\d", shop.locator("[data-countdown-left]").inner_text())
        shop.get_by_test_id("cancel-charge").click()
        shop.get_by_test_id("cancelled").wait_for(state="visible")
        assert shop.get_by_test_id("cancel-charge").count() == 0
    finally:
        ctx.close()
    with app.app_context():
        assert get_db().session.get(Charge, other["id"]).status == "cancelled"
