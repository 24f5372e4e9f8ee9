"""The landing page in a real browser (Debian chromium), in both languages, phone and desktop."""

from __future__ import annotations

import pytest

from scripts.demo_data import load_demo_data
from tests.pages import assert_fits_the_phone


@pytest.mark.parametrize(("width", "height"), [(360, 740), (1280, 800)], ids=["phone", "desktop"])
def test_landing_in_japanese_then_english_and_the_choice_is_remembered(
    app, live_server, browser, screenshot, width, height
):
    load_demo_data(app)
    context = browser.new_context(viewport={"width": width, "height": height}, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(live_server.url + "/")
        assert page.locator("html").get_attribute("lang") == "ja"
        assert page.locator("h1").inner_text() == "好きなまちを応援しよう"
        assert page.get_by_role("link", name="更別村").count() == 1
        # Nothing sticks out sideways on a 360 px phone.
        assert_fits_the_phone(page, width)
        screenshot(page, "ja")

        page.locator("a[data-lang=en]").click()
        # The switch comes back to the same URL: wait for the page in English.
        page.locator("html[lang=en]").wait_for(state="attached")
        assert page.url == live_server.url + "/"
        assert page.locator("h1").inner_text() == "Support your favourite town"
        screenshot(page, "en")

        page.get_by_role("link", name="Sarabetsu").click()
        page.wait_for_url(live_server.url + "/towns/sarabetsu")
        assert page.locator("h1").inner_text() == "Sarabetsu"
        assert "Sarabetsu Ambassador Card" in page.content()
        page.reload()
        assert page.locator("html").get_attribute("lang") == "en"  # remembered by cookie
        screenshot(page, "town-en")
    finally:
        context.close()
