"""The staff console's collections in a real browser at 360 px (Japanese): the town's staff
logs in, creates a collection with an uploaded PNG, and watches its on-chain set-up go from
queued to confirmed (the platform fixture runs the real worker, outbox and indexer) until the
collection is live. Nothing sticks out sideways on the phone."""

from __future__ import annotations

import time

from scripts.demo_data import load_demo_data
from tests.pages import assert_fits_the_phone

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


def test_staff_create_a_collection_on_a_phone_and_see_it_go_live(
    app, platform, browser, screenshot
):
    load_demo_data(app)
    base = platform.url
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(base + "/login?next=/towns/sarabetsu/admin/collections/new")
        page.fill("#email", "staff@sarabetsu.example")
        page.fill("#password", "furusato-demo-staff")
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(base + "/towns/sarabetsu/admin/collections/new")
        assert "コレクションを作成" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "console-collection-new-ja-360")
        page.select_option("#category", "experience")
        page.fill("#slug", "farm-stay")
        page.fill("#symbol", "FARM")
        page.fill("#name_ja", "農泊体験")
        page.fill("#name_en", "Farm stay")
        page.fill("#max_supply", "30")
        page.set_input_files(
            "#image", files=[{"name": "farm.png", "mimeType": "image/png", "buffer": PNG}]
        )
        page.get_by_role("button", name="コレクションを作成する").click()
        page.wait_for_url("**/admin/collections/*")
        assert "農泊体験" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "console-collection-queued-ja-360")
        deadline = time.monotonic() + 90
        status = page.get_by_test_id("collection-status")
        while status.get_attribute("data-status") != "live":
            assert time.monotonic() < deadline, status.get_attribute("data-status")
            time.sleep(1)
            page.reload()
        assert "公開中" in page.content() and "確認済み" in page.content()
        assert_fits_the_phone(page)
        screenshot(page, "console-collection-live-ja-360")
    finally:
        context.close()
