"""Issue 15 §1 done-when, on 360 px phones in Japanese: town staff link a family member as the
proxy of a resident registered without a phone (agreed in person), the shop shows a payment
QR, the proxy pays it from the resident's points within the limit (on anvil: the relayed
transfer is signed by the resident's key, mined and indexed, and the page turns to paid), then is
refused above the limit per payment and above the day's limit (a clear message, the balance
unchanged, nothing queued), and the balance slip printed at the town hall lists the payment."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import expect

from backend.accounts.models import User
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.merchants.models import Charge
from backend.points.programmes import EVENT_PRIZE
from backend.points.services import points_service
from tests.merchants.conftest import PASSWORD, run_chain
from tests.merchants.proxy_helpers import register_resident
from tests.merchants.test_town_hall_residents import _pdf_text
from tests.pages import assert_fits_the_phone, wait_for_path

PHONE = {"width": 360, "height": 740}


def _log_in(page, base: str, email: str, next_path: str) -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, next_path)


def _fits(page) -> None:
    assert_fits_the_phone(page)


def _transfers(app) -> int:
    with app.app_context():
        return int(
            get_db().session.scalar(
                sa.select(sa.func.count())
                .select_from(OutboxTx)
                .where(OutboxTx.function == "transfer")
            )
            or 0
        )


def _charge(shop, base: str, merchant_id: int, amount: int) -> str:
    shop.goto(f"{base}/merchants/{merchant_id}")
    shop.fill("#amount", str(amount))
    shop.get_by_role("button", name="Show the payment QR").click()
    shop.wait_for_url(re.compile(r"/charges/\d+$"))
    return shop.get_by_test_id("charge-code").inner_text().strip()


def test_a_family_proxy_pays_within_the_limit_and_is_refused_above_it(
    app, world, w3, browser, live_server, screenshot
):
    base = live_server.url
    card_id, resident_id = register_resident(app, world, name="佐藤 ハナ")
    # The resident's points, issued on chain and indexed (an event prize: no e-mail needed).
    with app.app_context():
        resident = get_db().session.get(User, resident_id)
        points_service().grant(resident, world.town(), EVENT_PRIZE, amount=1000, key="proxy")
    run_chain(app, w3)

    hall_ctx = browser.new_context(viewport=PHONE, locale="ja-JP")
    shop_ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    family_ctx = browser.new_context(viewport=PHONE, locale="ja-JP")
    try:
        # Town staff open the resident's card and link the family member, agreed in person.
        hall = hall_ctx.new_page()
        _log_in(hall, base, world.staff, "/towns/sarabetsu/cards")
        hall.locator("[data-testid=town-card]", has_text="佐藤 ハナ").get_by_role(
            "link", name="ご家族の代理人"
        ).click()
        wait_for_path(hall, f"/towns/sarabetsu/cards/{card_id}/proxies")
        linking = hall.get_by_test_id("link-proxy")
        linking.get_by_label("ご家族のアカウントのメールアドレス").fill(world.neighbour)
        linking.get_by_label("続柄(任意)").select_option("child")
        linking.get_by_label("1回の上限(ポイント)").fill("300")
        linking.get_by_label("1日の上限(ポイント・日本時間)").fill("400")
        submit = linking.get_by_role("button", name="代理人として登録する")
        submit.click()  # without the in-person checkbox the browser does not send the form
        expect(hall.get_by_test_id("proxy-linked")).to_have_count(0)
        linking.get_by_label("窓口で対面で同意しました", exact=False).check()
        submit.click()
        expect(hall.get_by_test_id("proxy-linked")).to_be_visible()
        row = hall.get_by_test_id("proxy-link")
        expect(row).to_contain_text(world.neighbour)
        expect(row).to_contain_text("1回 300 ポイント・1日 400 ポイントまで")
        _fits(hall)
        screenshot(hall, "1-linked-ja-360")

        # The family member sees the resident's balance on their phone.
        family = family_ctx.new_page()
        _log_in(family, base, world.neighbour, "/proxy")
        helped = family.get_by_test_id("helped")
        expect(helped).to_contain_text("佐藤 ハナ")
        expect(family.get_by_test_id("helped-balance")).to_have_text("1,000")
        # What the page shows (its markup holds a random CSP nonce and CSRF token).
        assert "0x" not in family.locator("body").inner_text()
        _fits(family)
        screenshot(family, "2-people-i-help-ja-360")

        # The shop shows a QR of 200 points; the proxy types its code, checks, then pays.
        shop = shop_ctx.new_page()
        _log_in(shop, base, world.clerk, f"/merchants/{world.merchant_id}")
        code = _charge(shop, base, world.merchant_id, 200)
        helped.get_by_label("お店が表示しているコード").fill(code)
        helped.get_by_role("button", name="次へ: 支払い内容を確認").click()
        expect(family.get_by_test_id("shop")).to_have_text("直売所")
        expect(family.get_by_test_id("amount")).to_contain_text("200")
        expect(family.get_by_test_id("whose")).to_have_text("佐藤 ハナ")
        expect(family.get_by_test_id("after")).to_contain_text("800")
        _fits(family)
        screenshot(family, "3-confirm-ja-360")
        assert _transfers(app) == 0  # the confirmation step sends nothing
        family.get_by_test_id("confirm-pay").click()
        family.wait_for_url(re.compile(rf"/proxy/\d+/charges/{code}$"))
        with app.app_context():
            charge = get_db().session.scalar(sa.select(Charge).where(Charge.code == code))
            assert charge.payer_user_id == resident_id and charge.method == "proxy"
            tx = get_db().session.get(OutboxTx, charge.outbox_tx_id)
            assert tx.user_id == resident_id  # signed by the resident's key, relayed
        run_chain(app, w3)  # sent to anvil, mined, its Transfer indexed
        expect(family.get_by_test_id("paid")).to_be_visible(timeout=20_000)
        expect(shop.get_by_test_id("paid")).to_be_visible(timeout=20_000)
        _fits(family)
        screenshot(family, "4-paid-ja-360")
        family.goto(f"{base}/proxy")
        expect(family.get_by_test_id("helped-balance")).to_have_text("800")

        # Above the limit per payment (300): refused with the reason, nothing paid.
        big = _charge(shop, base, world.merchant_id, 350)
        helped = family.get_by_test_id("helped")
        helped.get_by_label("お店が表示しているコード").fill(big)
        helped.get_by_role("button", name="次へ: 支払い内容を確認").click()
        error = family.get_by_test_id("proxy-error")
        expect(error).to_contain_text("1回の上限 300 ポイントを超えています")
        expect(error).to_contain_text("支払いはしていません")
        expect(family.get_by_test_id("helped-balance")).to_have_text("800")
        _fits(family)
        screenshot(family, "5-over-the-payment-limit-ja-360")

        # Within the limit per payment, but over what is left of the day (400 - 200 = 200).
        late = _charge(shop, base, world.merchant_id, 250)
        helped = family.get_by_test_id("helped")
        helped.get_by_label("お店が表示しているコード").fill(late)
        helped.get_by_role("button", name="次へ: 支払い内容を確認").click()
        expect(family.get_by_test_id("proxy-error")).to_contain_text("今日の残りは 200 ポイント")
        expect(family.get_by_test_id("helped-balance")).to_have_text("800")
        screenshot(family, "6-over-the-daily-limit-ja-360")
        # The confirmation page of the over-limit charge cannot be forced with a POST either.
        response = family.request.post(
            f"{base}/proxy/{helped.get_attribute('data-link-id')}/pay",
            form={
                "code": late,
                "csrf_token": family.locator("meta[name=csrf-token]").get_attribute("content"),
            },
        )
        assert response.status == 409
        assert _transfers(app) == 1
        run_chain(app, w3)
        family.reload()
        expect(family.get_by_test_id("helped-balance")).to_have_text("800")

        # The balance slip printed at the town hall lists the proxy and the payment.
        slip = hall.request.get(f"{base}/towns/sarabetsu/cards/{card_id}/balance.pdf")
        assert slip.ok and slip.headers["content-type"] == "application/pdf"
        text = _pdf_text(slip.body())
        assert "800 pt" in text and "ご家族の代理人" in text
        assert "直売所" in text and "-200 pt" in text and f"代理: {world.neighbour}" in text
        hall.reload()
        expect(hall.get_by_test_id("proxy-act")).to_have_count(1)
        _fits(hall)
        screenshot(hall, "7-staff-sees-the-payment-ja-360")
    finally:
        for ctx in (hall_ctx, shop_ctx, family_ctx):
            ctx.close()
