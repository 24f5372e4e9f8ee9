"""The console's Programmes page in a real browser (chromium) on a 360 px phone, in Japanese:
town staff log in, create a programme, see it "Processing…", and the page's poll switches it to
"set on the points network" once the chain confirms it (the outbox sends, anvil mines, the
receipt is read); nothing sticks out sideways."""

from __future__ import annotations

from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.core.db import get_db
from tests.pages import assert_fits_the_phone
from tests.points.conftest import PASSWORD, run_chain


def test_staff_create_a_programme_at_360_px_and_see_it_confirmed(
    app, w3, town_id, live_server, browser, screenshot
):
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        grant_town_role(svc.signup("staff@example.com", PASSWORD, verified=True), town_id, STAFF)
        get_db().session.commit()
    base = live_server.url
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(base + "/towns/sarabetsu/admin/programmes")
        page.fill("#email", "staff@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        page.wait_for_url(lambda url: url.endswith("/towns/sarabetsu/admin/programmes"))
        assert page.locator("h1").inner_text() == "ポイントプログラム"
        assert_fits_the_phone(page)
        screenshot(page, "programmes-ja-360")

        page.select_option("#new-kind", "event prize")
        page.fill("#new-name_ja", "秋祭りの賞品")
        page.fill("#new-name_en", "Autumn festival prize")
        page.fill("#new-cap_per_person_day", "1000")
        page.select_option("#new-expiry_days", "30")
        page.get_by_role("button", name="プログラムを作成する").click()
        page.wait_for_url(lambda url: "notice=created" in url)
        state = page.locator('[data-testid="state-5"]')
        assert state.get_attribute("data-setting-status") == "queued"
        assert "処理中" in state.inner_text()
        assert_fits_the_phone(page)
        page.locator('[data-testid="programme-5"] summary').click()  # the edit form opens
        assert_fits_the_phone(page)
        screenshot(page, "processing-ja-360")

        run_chain(app, w3)  # what the worker's beat does
        page.locator('[data-testid="state-5"][data-setting-status="confirmed"]').wait_for(
            timeout=15_000
        )
        assert state.inner_text() == "ポイントネットワークに設定済み"
        screenshot(page, "confirmed-ja-360")
    finally:
        context.close()
