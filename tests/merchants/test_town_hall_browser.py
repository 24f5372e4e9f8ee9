"""Issue 15 §1 done-when, on 360 px phones: town staff register a resident who has no phone or
e-mail, print the card (the PDF is read back: its text has the code and the town, its QR decodes
to the code, the PIN is nowhere in it), then the shop's camera films that printed card, the
clerk takes the payment and the resident types the PIN on the pad."""

from __future__ import annotations

import re
from decimal import Decimal

import pypdfium2
import sqlalchemy as sa
import zxingcpp
from playwright.sync_api import expect

from backend.accounts.models import Address, User
from backend.chain.indexer_models import TokenBalance
from backend.core.db import get_db
from tests.camera import image_y4m
from tests.merchants.conftest import PASSWORD
from tests.merchants.test_town_hall_residents import _pdf_text
from tests.pages import assert_fits_the_phone, wait_for_path


def _log_in(page, base: str, email: str, next_path: str) -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, next_path)


def test_staff_register_a_phoneless_resident_print_the_card_and_the_shop_scans_it(
    app, world, browser, live_server, camera, tmp_path, screenshot
):
    base = live_server.url
    town_ctx = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    hall = town_ctx.new_page()
    _log_in(hall, base, world.staff, "/towns/sarabetsu/cards")
    form = hall.get_by_test_id("register-resident")
    form.locator("#name").fill("佐藤 ハナ")
    form.get_by_label("ふりがな(任意)").fill("さとう はな")
    form.get_by_label("確認した身分証(任意)").select_option("health_insurance")
    register = form.get_by_role("button", name="登録してカードを発行")

    # Without the ID checkbox the browser does not send the form; nothing is registered.
    register.click()
    assert hall.url.endswith("/towns/sarabetsu/cards")
    expect(hall.get_by_test_id("issued-card")).to_have_count(0)

    form.get_by_label("住民の方の身分証を対面で確認しました", exact=False).check()
    register.click()
    issued = hall.get_by_test_id("issued-card")
    expect(issued).to_be_visible()
    code = issued.get_by_test_id("card-code").inner_text().strip()
    pin = issued.get_by_test_id("card-pin").inner_text().strip()
    assert re.fullmatch(r"C[A-Z0-9]{10}", code) and re.fullmatch(r"\d{6}", pin)
    assert_fits_the_phone(hall)
    screenshot(hall, "1-registered-ja-360")
    with app.app_context():
        s = get_db().session
        user = s.scalar(sa.select(User).where(User.display_name == "佐藤 ハナ"))
        assert user is not None and user.email is None and user.password_hash is None
        address = s.scalar(sa.select(Address.address).where(Address.user_id == user.id))
        town = world.town()
        s.merge(
            TokenBalance(
                chain_id=town.chain_id,
                contract_address=town.points_address,
                holder=address,
                amount=Decimal(300),
            )
        )
        s.commit()

    # Print the card: the link the page offers, fetched with the staff member's session.
    href = issued.get_by_test_id("print-card").get_attribute("href")
    pdf = hall.request.get(f"{base}{href}")
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    body = pdf.body()
    text = _pdf_text(body)
    assert code in text and "佐藤 ハナ" in text and pin not in text
    printed = pypdfium2.PdfDocument(body)[0].render(scale=6).to_pil()
    assert [r.text for r in zxingcpp.read_barcodes(printed)] == [code]

    # The shop's camera films the printed card; the clerk takes 120 points; the resident
    # types the PIN on the pad.
    phone = camera(image_y4m(printed, tmp_path / "printed-card.y4m"), locale="ja-JP")
    shop = phone.new_page()
    desk = f"/merchants/{world.merchant_id}"
    _log_in(shop, base, world.clerk, desk)
    charge = shop.locator("form[action$='/charge-customer']")
    charge.get_by_label("金額（ポイント）").fill("120")
    charge.get_by_role("button", name="カメラで読み取る").click()
    expect(charge.locator("#customer_code")).to_have_value(code, timeout=60_000)
    charge.get_by_role("button", name="支払いを受ける").click()
    shop.wait_for_url(re.compile(r"/pin-pad/[A-Za-z0-9_-]+$"))
    assert shop.get_by_test_id("pad-amount").inner_text().startswith("120")
    assert_fits_the_phone(shop)
    screenshot(shop, "2-pin-pad-ja-360")
    for d in pin:
        shop.locator(f".pad-key[data-digit='{d}']").click()
    shop.locator(".pad-key.primary").click()
    shop.wait_for_url(re.compile(rf"{desk}/charges/\d+$"))
    assert shop.get_by_test_id("charge-amount").inner_text().startswith("120")
    assert pin not in shop.content()

    # Back at the town hall, the card is listed; the staff lock it and the list says so.
    hall.goto(f"{base}/towns/sarabetsu/cards")
    row = hall.locator(f"[data-card-code='{code}']")
    row.get_by_role("button", name="停止する(紛失・盗難)").click()
    expect(hall.get_by_test_id("card-locked")).to_be_visible()
    expect(hall.locator(f"[data-card-code='{code}']").get_by_test_id("card-state")).to_be_visible()
    assert_fits_the_phone(hall)
    screenshot(hall, "3-locked-ja-360")
    town_ctx.close()
