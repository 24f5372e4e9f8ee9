"""Journey 3 in a real browser on the whole platform (live server, real worker, beat ticks):
staff propose a treasury payout → a card holder sees weight and why → votes For without gas →
results update live → staff queue → execute → the payout shows with its transaction."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.accounts.conftest import PASSWORD
from tests.dao.conftest import SLUG, make_staff, signup
from tests.pages import assert_fits_the_phone, goto_polling_page, wait_for_path

RECIPIENT = "0x00000000000000000000000000000000000000E2"
TEXT = {
    "ja": {
        "eligible": "アンバサダーカードを2枚お持ちなので、2票の重みで投票できます。",
        "vote_for": "賛成に投票",
        "confirm": "この内容で投票する",
        "chosen": "投票する内容: 賛成",
        "my_vote": "あなたの投票: 賛成",
        "queue": "支払いを予約する",
        "execute": "支払いを実行する",
        "paid": "支払い済み",
        "submit": "提案を出す",
    },
    "en": {
        "eligible": "You may vote, weight 2, because you hold 2 ambassador cards.",
        "vote_for": "Vote For",
        "confirm": "Confirm and send my vote",
        "chosen": "You are voting: For",
        "my_vote": "Your vote: For",
        "queue": "Queue the payout",
        "execute": "Execute the payout",
        "paid": "Paid out",
        "submit": "Submit proposal",
    },
}


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.3) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(every)


def log_in(browser: Any, base: str, email: str, width: int, height: int, lang: str) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="ja-JP" if lang == "ja" else "en-US"
    )
    page = context.new_page()
    page.goto(f"{base}/lang/{lang}?next=/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, "/me")
    return page


@pytest.mark.parametrize(
    ("width", "height", "lang"),
    [(360, 740, "ja"), (1280, 800, "en")],
    ids=["phone-ja", "desktop-en"],
)
def test_propose_vote_queue_execute_payout(
    app, town, platform, browser, screenshot, dao_chain, width, height, lang
):
    t = TEXT[lang]
    base = platform.url
    dao_chain.fund_treasury(500_000)
    staff_email, member_email = f"staff-{lang}@example.com", f"member-{lang}@example.com"
    _, staff_id, _ = signup(app, staff_email)
    make_staff(app, town, staff_id)
    _, _, member_addr = signup(app, member_email)
    dao_chain.mint_cards(member_addr, 2)

    staff = log_in(browser, base, staff_email, width, height, lang)
    member = log_in(browser, base, member_email, width, height, lang)
    try:
        # Staff: a spending proposal of 120,000 test yen.
        staff.goto(f"{base}/towns/{SLUG}/dao/new")
        staff.fill("#title_ja", "収穫祭のステージ")
        staff.fill("#title_en", "Harvest festival stage")
        staff.fill("#body_en", "A stage for the harvest festival.")
        staff.fill("#amount", "120000")
        staff.fill("#recipient", RECIPIENT)
        assert_fits_the_phone(staff, width)
        screenshot(staff, "staff-new")
        staff.get_by_role("button", name=t["submit"]).click()
        staff.wait_for_url(re.compile(r".*/dao/proposals/\d+$"))
        proposal_url = staff.url
        results_url = staff.locator("#dao-results").get_attribute("data-url")

        def staff_sees(button: str) -> int:
            goto_polling_page(staff, proposal_url)
            return int(staff.get_by_role("button", name=button).count())

        def state() -> str:
            return str(staff.request.get(base + results_url).json()["state"])

        wait_for(lambda: state() != "submitting")
        dao_chain.mine(2)  # the voting delay is 1 block
        assert wait_for(lambda: state() == "active")

        # Member: sees whether and why they may vote, before signing anything.
        member.goto(proposal_url)
        eligibility = member.locator("#dao-eligibility")
        assert eligibility.inner_text() == t["eligible"]
        assert eligibility.get_attribute("data-weight") == "2"
        assert_fits_the_phone(member, width)
        screenshot(member, "member-eligible")
        member.get_by_role("button", name=t["vote_for"]).click()
        # The choice in words first; nothing is sent until it is confirmed.
        assert member.get_by_test_id("confirm-choice").inner_text() == t["chosen"]
        member.get_by_role("button", name=t["confirm"]).click()
        # The vote posts and comes back to the proposal: wait for the page that says so.
        member.locator('#dao-eligibility[data-reason="already_voted"]').wait_for(timeout=30_000)
        assert member.locator("#dao-my-vote").inner_text() == t["my_vote"]
        # The results box polls the chain-backed JSON and updates without a reload.
        member.locator('[data-count="for"]').filter(has_text="2").wait_for(timeout=30_000)
        screenshot(member, "member-voted")

        # The vote ends; staff queue and, after the timelock delay, execute.
        # Pages follow the indexer (issue 16 §1): staff reload until the page shows the step.
        dao_chain.mine(301)
        wait_for(lambda: staff_sees(t["queue"]))
        staff.get_by_role("button", name=t["queue"]).click()
        wait_for(lambda: state() == "queued")
        dao_chain.increase_time(61)
        wait_for(lambda: staff_sees(t["execute"]))
        staff.get_by_role("button", name=t["execute"]).click()
        # The page reloads itself once the payout is indexed; the transaction is under details.
        staff.locator("#dao-payout [data-tx]").wait_for(state="attached", timeout=30_000)
        assert staff.locator("#dao-state").inner_text() == t["paid"]
        tx = staff.locator("#dao-payout [data-tx]").text_content()
        assert re.fullmatch(r"0x[0-9a-f]{64}", tx)
        assert "120,000" in staff.locator("#dao-payout").inner_text()
        outside_details = staff.evaluate(
            "() => { document.querySelectorAll('details').forEach((d) => d.remove());"
            " return document.body.innerText; }"
        )
        assert not re.search(r"0x[0-9a-fA-F]{8,}", outside_details), outside_details
        staff.reload()
        assert dao_chain.yen_balance(RECIPIENT) == 120_000
        screenshot(staff, "staff-paid")

        goto_polling_page(member, proposal_url)  # open since the vote: it may reload itself
        assert member.locator("#dao-payout [data-tx]").text_content() == tx
    finally:
        staff.context.close()
        member.context.close()
