"""The Services section in chromium on a 360 px phone (Japanese): the admin registers the car
share, copies its key from the page that shows it once, uses it against the API, rotates it and
revokes the old key, with no sideways scroll."""

from __future__ import annotations

import requests

from tests.integrations.conftest import ADMIN_EMAIL, THANKS
from tests.merchants.conftest import PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path


def _no_sideways_scroll(page) -> None:
    assert_fits_the_phone(page)


def _works(base: str, key: str) -> int:
    return requests.get(
        f"{base}/api/v1/service", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).status_code


def test_admin_registers_rotates_and_revokes_on_a_phone(
    app, world, admins, live_server, browser, screenshot
):
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        page.goto(f"{live_server.url}/login?next=/towns/sarabetsu/admin/services")
        page.fill("#email", ADMIN_EMAIL)
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/towns/sarabetsu/admin/services")
        assert page.get_by_role("heading", name="連携サービス", exact=True).is_visible()
        _no_sideways_scroll(page)
        screenshot(page, "1-services-ja-360")

        page.fill("#name_ja", "相乗り")
        page.fill("#name_en", "Car share")
        page.check(f"input[name=programme_ids][value='{THANKS}']")
        page.fill("#cap_per_issuance", "500")
        page.fill("#daily_budget", "20000")
        page.get_by_role("button", name="登録してキーを作る").click()
        key = page.get_by_test_id("api-key").inner_text().strip()
        assert key.startswith("fur_")
        assert "一度だけ" in page.content()
        _no_sideways_scroll(page)
        screenshot(page, "2-key-once-ja-360")
        assert _works(live_server.url, key) == 200

        page.get_by_role("link", name="完了: サービスに戻る").click()
        assert page.get_by_test_id("day-usage").inner_text().startswith("20,000")
        assert key not in page.content()
        page.get_by_role("button", name="新しいキーを作る（切り替え）").click()
        new = page.get_by_test_id("api-key").inner_text().strip()
        assert new != key and _works(live_server.url, new) == _works(live_server.url, key) == 200
        _no_sideways_scroll(page)

        page.get_by_role("link", name="完了: サービスに戻る").click()
        page.get_by_role("button", name=f"キー {key.split('_')[1]} を失効させる").click()
        page.wait_for_url("**notice=revoked")
        assert page.get_by_role("status").inner_text().startswith("キーを失効させました")
        assert _works(live_server.url, key) == 401 and _works(live_server.url, new) == 200
        _no_sideways_scroll(page)
        screenshot(page, "3-revoked-ja-360")
    finally:
        phone.close()
