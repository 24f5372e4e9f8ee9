"""Issuing by CSV in a real browser on the whole platform (web, worker, beat, anvil): town staff
on a phone (360 px, Japanese) upload a CSV, see the preview with the bad row, confirm, and
watch the progress page turn every row to confirmed by itself (the page polls the JSON status;
the test waits for the state the page shows, never for time)."""

from __future__ import annotations

from tests.issuing.conftest import chain_balance
from tests.merchants.conftest import PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path


def test_upload_preview_confirm_and_watch_progress(app, world, platform, browser, w3, screenshot):
    base = platform.url
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        path = "/towns/sarabetsu/admin/issue"
        page.goto(f"{base}/login?next={path}")
        page.fill("#email", world.staff)
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, path)
        assert_fits_the_phone(page)
        screenshot(page, "1-issue-ja-360")

        csv = (
            "受取人,ポイント,メモ\n"
            f"{world.customer},700,清掃\n"
            f"{world.neighbour},300,清掃\n"
            "CZZZZZZZZZZ,5,未登録のカード\n"
        ).encode("cp932")
        page.set_input_files(
            "#file", files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": csv}]
        )
        page.fill("#reason-upload", "川の清掃のお礼")
        page.get_by_role("button", name="プレビュー").click()
        page.get_by_test_id("preview-summary").wait_for()
        assert page.get_by_test_id("batch-total").inner_text() == "1,000"
        assert page.locator('tr[data-line="4"] [data-row-status="invalid"]').count() == 1
        assert_fits_the_phone(page)
        screenshot(page, "2-preview-ja-360")

        page.get_by_role("button", name="確定して 1,000 ポイントを発行する").click()
        page.locator("progress").wait_for()
        # The page moves by itself (JS polling): wait for the state it shows, not for time.
        page.locator('[data-testid=batch-state][data-state="done"]').wait_for(timeout=60_000)
        assert page.get_by_test_id("batch-state").inner_text() == "完了"
        assert page.locator('[data-row-status="confirmed"]').count() == 2
        assert page.locator("progress").evaluate("p => p.value") == 100
        assert_fits_the_phone(page)
        screenshot(page, "3-done-ja-360")
    finally:
        phone.close()
    with app.app_context():
        points = world.town().points_address
        customer = world.user(world.customer).addresses[0].address
        neighbour = world.user(world.neighbour).addresses[0].address
    assert chain_balance(w3, points, customer) == 700
    assert chain_balance(w3, points, neighbour) == 300
