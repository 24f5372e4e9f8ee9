"""Partner towns through the pages in a real browser, on a phone in Japanese and on a desktop in
English (issue 13 §3): the two towns' staff agree, the customer pays a Sarabetsu shop with Tōyako
points, Tōyako's staff approve (two people) and pay the clearing; Sarabetsu's staff see it paid;
Tōyako's staff set a new yen per point, shown waiting for next month. No page is wider than the
screen."""

from __future__ import annotations

import pytest

from tests.dao.test_dao_journey import log_in
from tests.merchants.conftest import run_chain
from tests.pages import assert_fits_the_phone
from tests.partners.conftest import (
    CUSTOMER,
    SARABETSU_STAFF,
    TOYAKO_STAFF,
    TOYAKO_STAFF2,
)
from tests.partners.test_partners_flow import _charge, _next_month

TEXT = {
    "ja": {
        "propose": "提案する",
        "approve": "提携を承認する",
        "active": "稼働中",
        "pay": "30 ポイントを支払う",
        "approve_statement": "この明細を承認する",
        "paid": "支払済みにする",
        "owes": "洞爺湖町が更別村に30円を支払います。",
        "done": "支払済み",
        "save": "保存",
        "pending": "から：1ポイントあたり2円",
    },
    "en": {
        "propose": "Propose",
        "approve": "Approve the partnership",
        "active": "Active",
        "pay": "Pay 30 points",
        "approve_statement": "Approve this statement",
        "paid": "Mark as paid",
        "owes": "Lake Toya owes Sarabetsu 30 yen.",
        "done": "Paid",
        "save": "Save",
        "pending": ": ¥2 per point",
    },
}


@pytest.mark.parametrize(
    ("width", "height", "lang"),
    [(360, 740, "ja"), (1280, 800, "en")],
    ids=["phone-ja", "desktop-en"],
)
def test_partner_towns_in_the_browser(
    app, towns, w3, live_server, browser, screenshot, width, height, lang
):
    t, base = TEXT[lang], live_server.url
    pages = []
    try:
        sara = log_in(browser, base, SARABETSU_STAFF, width, height, lang)
        pages.append(sara)
        sara.goto(f"{base}/towns/sarabetsu/admin/partners")
        assert_fits_the_phone(sara, width)
        sara.select_option("#partner-town", "toyako")
        sara.get_by_role("button", name=t["propose"], exact=True).click()
        sara.wait_for_selector('[data-testid="partnership-toyako"]')
        toya = log_in(browser, base, TOYAKO_STAFF, width, height, lang)
        pages.append(toya)
        toya.goto(f"{base}/towns/toyako/admin/partners")
        toya.get_by_role("button", name=t["approve"]).click()
        toya.wait_for_selector('[data-testid="chain-mine"]')
        assert_fits_the_phone(toya, width)
        screenshot(toya, f"approved-{lang}")
        run_chain(app, w3)
        toya.reload()
        assert toya.locator('[data-testid="partnership-status"]').inner_text() == t["active"]
        # The customer pays the Sarabetsu shop with Tōyako points.
        charge = _charge(towns, 30, f"browser-{lang}")
        customer = log_in(browser, base, CUSTOMER, width, height, lang)
        pages.append(customer)
        customer.goto(f"{base}/pay/{charge['code']}")
        assert_fits_the_phone(customer, width)
        customer.locator('[data-testid="points-town-toyako"]').check()
        screenshot(customer, f"pay-{lang}")
        customer.get_by_role("button", name=t["pay"]).click()
        customer.wait_for_selector('[data-testid="paid-with"]')
        run_chain(app, w3)
        # Both towns' staff see the statement; Tōyako's two staff approve, one pays.
        sara.goto(f"{base}/towns/sarabetsu/admin/clearing")
        assert t["owes"] in sara.locator('[data-testid="net"]').inner_text()
        _next_month(w3)
        month = sara.locator("#month").input_value()
        toya.goto(f"{base}/towns/toyako/admin/clearing?month={month}")
        assert_fits_the_phone(toya, width)
        toya.get_by_role("button", name=t["approve_statement"]).click()
        toya.wait_for_selector('[data-testid="needs-second"]')
        toya2 = log_in(browser, base, TOYAKO_STAFF2, width, height, lang)
        pages.append(toya2)
        toya2.goto(f"{base}/towns/toyako/admin/clearing?month={month}")
        toya2.get_by_role("button", name=t["approve_statement"]).click()
        toya2.fill("#ref-sarabetsu", f"ZENGIN-{lang}")
        toya2.get_by_role("button", name=t["paid"]).click()
        toya2.wait_for_selector('[data-testid="settlement-status"]')
        sara.goto(f"{base}/towns/sarabetsu/admin/clearing?month={month}")
        status = sara.locator('[data-testid="settlement-status"]').inner_text()
        assert t["done"] in status and f"ZENGIN-{lang}" in status
        assert_fits_the_phone(sara, width)
        screenshot(sara, f"clearing-{lang}")
        # Tōyako sets a new yen per point: it waits for next month, the paid month keeps its.
        toya2.goto(f"{base}/towns/toyako/admin/partners")
        toya2.fill("#rate", "2")
        toya2.get_by_role("button", name=t["save"], exact=True).click()
        toya2.wait_for_selector('[data-testid="rate-history"]')
        assert t["pending"] in toya2.locator('[data-testid="rate-pending"]').inner_text()
        assert_fits_the_phone(toya2, width)
        screenshot(toya2, f"rate-{lang}")
        sara.goto(f"{base}/towns/sarabetsu/admin/clearing?month={month}")
        assert t["owes"] in sara.locator('[data-testid="net"]').inner_text()
    finally:
        for p in pages:
            p.context.close()
