"""The KPI page in chromium on a 360 px phone in Japanese, at the default text size and at
200 % text (tests/pages.py assert_fits_the_phone): no sideways scroll."""

from __future__ import annotations

from tests.console.conftest import EMAILS
from tests.merchants.conftest import PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path


def test_the_kpis_fit_a_phone(app, town, live_server, browser, screenshot):
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        page.goto(f"{live_server.url}/login?next=/towns/sarabetsu/admin/kpis")
        page.fill("#email", EMAILS["data"])
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/towns/sarabetsu/admin/kpis")
        assert page.get_by_role("heading", name="KPI", exact=True).is_visible()
        assert page.get_by_test_id("kpi-export").is_visible()
        assert_fits_the_phone(page)
        screenshot(page, "1-kpis-ja-360")
    finally:
        phone.close()
