"""The console's "Failed grants" page in a real browser (chromium) on a 360 px phone, in
Japanese: a failed grant with the chain's long error fits the screen, and "send again" leaves
an empty list with the notice; nothing sticks out sideways."""

from __future__ import annotations

from tests.pages import assert_fits_the_phone
from tests.points.conftest import PASSWORD
from tests.points.failed_grants_helpers import fail_call, grant, grant_row, staff

LONG_ERROR = "execution reverted: ProgrammeInactive(" + "0x" + "ab" * 40 + ")"


def test_staff_send_a_failed_grant_again_on_a_360_px_phone(
    app, town_id, user_id, live_server, browser, screenshot
):
    staff(app, town_id)
    gid, tx_id = grant(app, user_id, town_id)
    fail_call(app, tx_id, LONG_ERROR)
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(live_server.url + "/towns/sarabetsu/admin/failed-grants")
        page.fill("#email", "staff@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        page.wait_for_url(lambda url: url.endswith("/towns/sarabetsu/admin/failed-grants"))
        assert page.locator("h1").inner_text() == "付与に失敗したポイント"
        assert LONG_ERROR in page.locator(f'[data-testid="grant-{gid}"]').inner_text()
        assert_fits_the_phone(page)
        screenshot(page, "failed-grants-ja-360")

        page.locator(f'[data-testid="retry-{gid}"]').click()
        page.wait_for_url(lambda url: "notice=sent" in url)
        assert page.locator('[data-testid="none"]').is_visible()
        assert_fits_the_phone(page)
        assert grant_row(app, gid)["status"] == "pending"
    finally:
        context.close()
