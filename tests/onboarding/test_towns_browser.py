"""Onboarding a town in a real browser on a phone (360 px, Japanese): the operator fills the
form, the progress page follows the worker (JS polling the JSON status) until the town is live,
and the first admin follows the mailed link, chooses a password and lands in the staff console.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest

from backend.core.db import get_db
from backend.onboarding.services import add_operator
from tests.onboarding.conftest import PASSWORD, signup
from tests.pages import assert_fits_the_phone, wait_for_path


@pytest.fixture
def app(make_app, deployed, deployments_dir, tmp_path, smtp_server):
    own = tmp_path / "deployments"
    shutil.copytree(deployments_dir, own)
    return make_app(deployments_dir=own, **smtp_server.settings)


def _fits(page, width: int) -> None:
    assert_fits_the_phone(page, width)


def test_an_operator_onboards_a_town_on_a_phone(app, platform, browser, mailbox, screenshot):
    signup(app, "operator@example.com")
    with app.app_context():
        add_operator(get_db().session(), "operator@example.com")
    base = platform.url
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        page = phone.new_page()
        page.goto(f"{base}/login?next=/operator/towns/new")
        page.fill("#email", "operator@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/operator/towns/new")
        # A bad symbol first: a clear error on the field, nothing started.
        for field, value in [
            ("slug", "niseko"), ("name_ja", "ニセコ町"), ("name_en", "Niseko"),
            ("prefecture_ja", "北海道"), ("prefecture_en", "Hokkaido"), ("symbol", "tya"),
            ("admin_email", "mayor@niseko.example"),
        ]:  # fmt: skip
            page.fill(f"#{field}", value)
        page.locator("form.form button[type=submit]").click()
        assert "大文字" in page.get_by_test_id("error").inner_text()
        assert page.locator("#symbol").get_attribute("aria-invalid") == "true"
        _fits(page, 360)
        screenshot(page, "1-new-town-error-ja-360")
        page.fill("#symbol", "NSK")
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/operator/towns/niseko")
        _fits(page, 360)
        screenshot(page, "2-setting-up-ja-360")
        page.wait_for_selector("#setup-state[data-state=live]", timeout=120_000)
        assert page.locator("#setup-live").is_visible()
        assert (
            page.locator("#setup-steps li[data-state=confirmed]").count()
            == page.locator("#setup-steps li").count()
        )
        _fits(page, 360)
        screenshot(page, "3-live-ja-360")
        page.locator("#setup-live a").click()
        wait_for_path(page, "/towns/niseko")
        assert "ニセコ町" in page.content()

        mail = mailbox.wait_for("mayor@niseko.example")
        mayor = phone.browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
        try:
            p2 = mayor.new_page()
            p2.goto(base + urlsplit(mail.link()).path)
            p2.fill("#display_name", "町長")
            p2.fill("#password", PASSWORD)
            _fits(p2, 360)
            screenshot(p2, "4-invite-ja-360")
            p2.locator("form.form button[type=submit]").click()
            wait_for_path(p2, "/towns/niseko/admin")
            _fits(p2, 360)
        finally:
            mayor.close()
    finally:
        phone.close()
