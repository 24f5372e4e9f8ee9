"""The People and Audit log pages in chromium on a 360 px phone (Japanese): the admin appoints
someone by e-mail, sees them listed and the change in the audit log, with no sideways scroll."""

from __future__ import annotations

from tests.console.conftest import EMAILS
from tests.merchants.conftest import PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path


def _no_sideways_scroll(page) -> None:
    assert_fits_the_phone(page)


def test_admin_appoints_data_staff_on_a_phone(app, town, live_server, browser, screenshot):
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        page.goto(f"{live_server.url}/login?next=/towns/sarabetsu/admin/people")
        page.fill("#email", EMAILS["admin"])
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/towns/sarabetsu/admin/people")
        assert page.get_by_role("heading", name="担当者", exact=True).is_visible()
        _no_sideways_scroll(page)
        screenshot(page, "1-people-ja-360")

        page.fill("#appoint-email", "newbie@example.com")
        page.select_option("#appoint-role", "data")
        page.get_by_role("button", name="任命する", exact=True).click()
        page.wait_for_url("**/admin/people?notice=appointed")
        assert page.get_by_role("status").inner_text().startswith("任命しました")
        assert "newbie@example.com" in page.get_by_test_id("role-data").inner_text()
        _no_sideways_scroll(page)
        screenshot(page, "2-appointed-ja-360")

        # An unknown e-mail: the message is in the page, the form keeps what was typed.
        page.fill("#appoint-email", "nobody@example.com")
        page.get_by_role("button", name="任命する", exact=True).click()
        page.get_by_test_id("people-error").wait_for(state="visible")
        assert "アカウントはありません" in page.get_by_test_id("people-error").inner_text()
        assert page.input_value("#appoint-email") == "nobody@example.com"
        _no_sideways_scroll(page)

        page.goto(f"{live_server.url}/towns/sarabetsu/admin/audit?action=town.role")
        rows = page.get_by_test_id("audit-rows")
        assert "town.role.grant" in rows.inner_text() and "admin@example.com" in rows.inner_text()
        assert page.get_by_test_id("audit-export").count() == 0  # the admin is not data staff
        _no_sideways_scroll(page)
        screenshot(page, "3-audit-ja-360")
    finally:
        phone.close()
