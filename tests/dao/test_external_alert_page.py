"""Staff see an alert for a proposal made outside the platform on their phone, in ja and en
(real browser, live server, real worker indexing the chain), and mark it checked."""

from __future__ import annotations

import pytest

from tests.dao.conftest import SLUG, make_staff, signup
from tests.dao.test_dao_journey import log_in, wait_for
from tests.dao.test_external_proposals import Tourist
from tests.pages import assert_fits_the_phone

TEXT = {
    "ja": {"alert": "プラットフォームの外で提案が作られました。", "checked": "確認済みにする"},
    "en": {"alert": "A proposal was made outside the platform.", "checked": "Mark as checked"},
}


@pytest.mark.parametrize(
    ("width", "height", "lang"),
    [(360, 740, "ja"), (1280, 800, "en")],
    ids=["phone-ja", "desktop-en"],
)
def test_staff_see_and_check_the_alert(
    app, town, platform, browser, screenshot, dao_chain, w3, width, height, lang
):
    t = TEXT[lang]
    base = platform.url
    email = f"guard-{lang}@example.com"
    _, staff_id, _ = signup(app, email)
    make_staff(app, town, staff_id)
    tourist = Tourist(w3, dao_chain)
    dao_chain.mint_cards(tourist.address, 1)
    dao_chain.fund_treasury(1_000_000)
    dao_chain.mine(1)
    tourist.propose(tourist.drain(f"pay the whole treasury to me ({lang})"))

    staff = log_in(browser, base, email, width, height, lang)
    try:

        def alert_shown() -> bool:
            # The alert and the proposal's row commit together, but one page render reads the
            # list before the alerts (READ COMMITTED): wait for a render that saw both.
            staff.goto(f"{base}/towns/{SLUG}/dao")
            return (
                staff.locator('#dao-alerts [data-kind="external_proposal"]').count() == 1
                and staff.locator('[data-origin="external"]').count() == 1
            )

        wait_for(alert_shown)
        box = staff.locator("#dao-alerts")
        assert t["alert"] in box.inner_text()
        assert tourist.address in box.inner_text()
        assert staff.locator('[data-origin="external"]').count() == 1
        assert_fits_the_phone(staff, width)
        screenshot(staff, "staff-alert")
        staff.get_by_role("button", name=t["checked"]).click()
        staff.wait_for_url(f"{base}/towns/{SLUG}/dao")
        assert staff.locator("#dao-alerts").count() == 0
        assert staff.locator('[data-origin="external"]').count() == 1  # still listed
    finally:
        staff.context.close()
