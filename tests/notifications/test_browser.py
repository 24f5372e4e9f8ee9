"""The notifications page and its settings in chromium on a 360 px phone, in Japanese and English:
the header's count, the list with unread ones marked, marking one read, switching a kind's mail
off; no sideways scroll anywhere."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.accounts.services import AccountService
from backend.chain.custody import get_vault
from backend.core.db import get_db
from backend.notifications.models import CHARGE_PAID, POINTS_ARRIVED, TICKET_USED, VOTE_OPENED
from backend.notifications.services import notify
from tests.notifications.conftest import switches
from tests.pages import assert_fits_the_phone, wait_for_path

PASSWORD = "correct horse battery"
FACTS = [
    (
        POINTS_ARRIVED,
        {"amount": 500, "town_ja": "更別村", "town_en": "Sarabetsu"},
    ),
    (
        CHARGE_PAID,
        {
            "amount": 1200,
            "shop_ja": "さらべつ農園直売所",
            "shop_en": "Sarabetsu Farm Market and Lakeside Gift Shop",
            "town_ja": "更別村",
            "town_en": "Sarabetsu",
        },
    ),
    (
        TICKET_USED,
        {
            "collection_ja": "更別村アンバサダーカード",
            "collection_en": "Sarabetsu Ambassador Card",
            "perk_ja": "収穫祭VIP入場",
            "perk_en": "Harvest festival VIP entry",
            "town_ja": "更別村",
            "town_en": "Sarabetsu",
            "token_id": 12,
            "uses_left": 2,
        },
    ),
    (
        VOTE_OPENED,
        {
            "what": "poll",
            "row_id": 3,
            "town_slug": "sarabetsu",
            "town_ja": "更別村",
            "town_en": "Sarabetsu",
            "title_ja": "特産品ラベルのデザイン",
            "title_en": "Label design for the local produce",
        },
    ),
]
TEXT = {
    "ja": {
        "heading": "お知らせ",
        "link": "お知らせ",
        "read": "既読にする",
        "settings": "お知らせの設定",
        "save": "保存",
        "saved": "設定を保存しました。",
        "paid": "さらべつ農園直売所（更別村）で1,200ポイントをお支払いしました。",
        "time": "（日本時間）",
    },
    "en": {
        "heading": "Notifications",
        "link": "Notifications",
        "read": "Mark as read",
        "settings": "Notification settings",
        "save": "Save",
        "saved": "Your settings are saved.",
        "paid": "You paid 1,200 points at Sarabetsu Farm Market and Lakeside Gift Shop "
        "(Sarabetsu).",
        "time": " JST",
    },
}


def _no_sideways_scroll(page) -> None:
    assert_fits_the_phone(page)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_notifications_and_settings_on_a_phone(app, live_server, browser, screenshot, lang):
    t = TEXT[lang]
    with app.app_context():
        s = get_db().session()
        uid = (
            AccountService(s, lambda: get_vault(app))
            .signup("fan@example.com", PASSWORD, verified=True)
            .id
        )
        start = dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC)
        for i, (kind, params) in enumerate(FACTS):
            notify(
                s,
                kind=kind,
                key=f"{kind}:{i}",
                user_ids=[uid],
                params=params,
                now=start + dt.timedelta(hours=i),
            )
        s.commit()
    phone = browser.new_context(
        viewport={"width": 360, "height": 740}, locale="ja-JP" if lang == "ja" else "en-US"
    )
    try:
        page = phone.new_page()
        page.goto(f"{live_server.url}/login?next=/me/notifications")
        page.fill("#email", "fan@example.com")
        page.fill("#password", PASSWORD)
        page.locator("form.form button[type=submit]").click()
        wait_for_path(page, "/me/notifications")
        assert page.get_by_role("heading", name=t["heading"], exact=True).is_visible()
        assert page.get_by_test_id("notifications-count").inner_text() == "4"
        assert page.get_by_test_id("notifications-link").is_visible()
        items = page.get_by_test_id("notification")
        assert items.count() == 4
        assert [items.nth(i).get_attribute("data-kind") for i in range(4)] == [
            VOTE_OPENED,
            TICKET_USED,
            CHARGE_PAID,
            POINTS_ARRIVED,
        ]
        assert page.get_by_test_id("unread-mark").count() == 4
        paid = items.nth(2)
        assert t["paid"] in paid.inner_text() and t["time"] in paid.inner_text()
        assert "0x" not in page.locator("main").inner_text()
        _no_sideways_scroll(page)
        screenshot(page, f"1-list-{lang}-360")

        paid.get_by_role("button", name=t["read"]).click()
        wait_for_path(page, "/me/notifications")
        page.get_by_test_id("notifications-count").filter(has_text="3").wait_for()
        assert page.get_by_test_id("unread-mark").count() == 3
        assert page.get_by_test_id("notification").nth(2).get_attribute("data-unread") == "false"
        _no_sideways_scroll(page)

        page.get_by_test_id("notification-settings-link").click()
        wait_for_path(page, "/me/notifications/settings")
        assert page.get_by_role("heading", name=t["settings"], exact=True).is_visible()
        box = page.get_by_test_id("switch-charge_paid.email")
        assert box.is_checked()
        _no_sideways_scroll(page)
        screenshot(page, f"2-settings-{lang}-360")
        box.uncheck()
        page.get_by_role("button", name=t["save"], exact=True).click()
        page.get_by_test_id("saved").wait_for()
        assert page.get_by_test_id("saved").inner_text() == t["saved"]
        assert not page.get_by_test_id("switch-charge_paid.email").is_checked()
        assert page.get_by_test_id("switch-charge_paid.in_app").is_checked()
        _no_sideways_scroll(page)
        screenshot(page, f"3-saved-{lang}-360")
        assert switches(app) == [(uid, CHARGE_PAID, "email", False)]
    finally:
        phone.close()
