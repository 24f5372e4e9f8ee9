"""The confirmation step of a vote in a real browser (issue 15 §7), on a 360 px phone in
Japanese with JavaScript off (the step needs no script): choose → the choice in words → back,
nothing sent → choose again → confirm → the proposal says "あなたの投票: 賛成" and when; then
the same page in English says "Your vote: For"."""

from __future__ import annotations

import re

from tests.accounts.conftest import PASSWORD
from tests.dao.conftest import SLUG, make_staff, poll_counts, settle, signup
from tests.dao.test_dao_api import open_proposal
from tests.pages import assert_fits_the_phone, wait_for_path


def test_vote_confirm_back_then_confirm_on_a_phone_without_javascript(
    manual_outbox, town, live_server, browser, screenshot, dao_chain
):
    app = manual_outbox
    base = live_server.url
    dao_chain.fund_treasury(100_000)
    staff, staff_id, _ = signup(app)
    make_staff(app, town, staff_id)
    _, _, member_addr = signup(app, "voter@example.com")
    dao_chain.mint_cards(member_addr, 1)
    pid = open_proposal(app, staff, dao_chain)
    url = f"{base}/towns/{SLUG}/dao/proposals/{pid}"

    context = browser.new_context(
        viewport={"width": 360, "height": 740}, locale="ja-JP", java_script_enabled=False
    )
    page = context.new_page()
    try:
        page.goto(f"{base}/lang/ja?next=/login")
        page.fill("#email", "voter@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/me")

        page.goto(url)
        assert page.locator("#dao-eligibility").get_attribute("data-reason") == "eligible"
        before = poll_counts(app)
        page.get_by_role("button", name="反対に投票").click()
        wait_for_path(page, f"/towns/{SLUG}/dao/proposals/{pid}/vote")
        assert page.locator("h1").inner_text() == "投票内容の確認"
        assert page.get_by_test_id("confirm-choice").inner_text() == "投票する内容: 反対"
        assert_fits_the_phone(page)
        screenshot(page, "confirm-against")
        # Back: nothing was sent, the person may choose again.
        page.get_by_role("link", name="戻って選び直す").click()
        wait_for_path(page, f"/towns/{SLUG}/dao/proposals/{pid}")
        assert page.locator("#dao-eligibility").get_attribute("data-reason") == "eligible"
        assert page.locator("#dao-my-vote").count() == 0
        assert poll_counts(app) == before

        page.get_by_role("button", name="賛成に投票").click()
        assert page.get_by_test_id("confirm-choice").inner_text() == "投票する内容: 賛成"
        screenshot(page, "confirm-for")
        page.get_by_role("button", name="この内容で投票する").click()
        wait_for_path(page, f"/towns/{SLUG}/dao/proposals/{pid}")
        assert page.locator("#dao-my-vote").inner_text() == "あなたの投票: 賛成"
        when = page.locator("#dao-my-vote-when").inner_text()
        jst = r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d（日本時間）"
        assert re.fullmatch(rf"投票日時: {jst}（記録中）", when), when
        assert_fits_the_phone(page)
        screenshot(page, "voted-ja")
        assert poll_counts(app)["dao_votes"] == before["dao_votes"] + 1

        # Counted on chain; the same page in English.
        settle(app, dao_chain)
        page.goto(f"{base}/lang/en?next=/towns/{SLUG}/dao/proposals/{pid}")
        wait_for_path(page, f"/towns/{SLUG}/dao/proposals/{pid}")
        assert page.locator("#dao-my-vote").inner_text() == "Your vote: For"
        when = page.locator("#dao-my-vote-when").inner_text()
        assert re.fullmatch(r"Voted at \d{4}-\d\d-\d\d \d\d:\d\d JST \(counted\)\.", when)
        assert page.locator('[data-count="for"]').inner_text() == "1"
        screenshot(page, "voted-en")
    finally:
        context.close()
