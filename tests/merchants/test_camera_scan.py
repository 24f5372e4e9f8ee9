"""The shop's desk reads the customer's code or card with the phone's camera (issue 15 §2):
chromium films a QR code made at test time (tests/camera.py); the scanner fills the code in,
the clerk presses the button and the charge goes on. Refused camera: the message says so in
Japanese or English and typing the code still takes the payment. On 360 px phones."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.camera import qr_y4m
from tests.merchants.conftest import PASSWORD, set_balance
from tests.pages import assert_fits_the_phone, wait_for_path

PIN = "482916"


def _log_in(page, base: str, email: str, next_path: str) -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, next_path)


def _customer_code(app, world) -> str:
    with app.app_context():
        code, _expires = world.service().issue_customer_code(world.user(world.customer))
    return code


def test_the_clerk_scans_a_customer_code_and_takes_the_payment(
    app, world, live_server, camera, tmp_path, screenshot
):
    set_balance(app, world, world.customer, 500)
    code = _customer_code(app, world)
    phone = camera(qr_y4m(code, tmp_path / "customer-code.y4m"), locale="ja-JP")
    shop = phone.new_page()
    desk = f"/merchants/{world.merchant_id}"
    _log_in(shop, live_server.url, world.clerk, desk)
    form = shop.locator("form[action$='/charge-customer']")
    form.get_by_label("金額（ポイント）").fill("120")
    form.get_by_role("button", name="カメラで読み取る").click()

    # The code read from the camera is put in; nothing is sent before the clerk presses.
    expect(form.locator("#customer_code")).to_have_value(code, timeout=60_000)
    expect(form.get_by_text("読み取ったコード：")).to_be_visible()
    expect(form.locator("video")).to_be_hidden()  # the camera is off again
    assert shop.url.endswith(desk)
    assert_fits_the_phone(shop)
    screenshot(shop, "1-code-read-ja-360")

    form.get_by_role("button", name="支払いを受ける").click()
    shop.wait_for_url(re.compile(rf"{desk}/charges/\d+$"))
    shop.get_by_text("処理しています", exact=False).first.wait_for()
    assert shop.get_by_test_id("charge-amount").inner_text().startswith("120")
    screenshot(shop, "2-charging-ja-360")


def test_the_clerk_scans_a_printed_card_and_the_resident_types_the_pin(
    app, world, live_server, camera, tmp_path, screenshot
):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), PIN
        )
        card_code = card.card_code
    phone = camera(qr_y4m(card_code, tmp_path / "card.y4m"), locale="en-GB")
    shop = phone.new_page()
    desk = f"/merchants/{world.merchant_id}"
    _log_in(shop, live_server.url, world.clerk, desk)
    form = shop.locator("form[action$='/charge-customer']")
    # Scanned before the amount was typed: the amount is what the clerk is taken to next.
    form.get_by_role("button", name="Scan with camera").click()
    expect(form.locator("#customer_code")).to_have_value(card_code, timeout=60_000)
    expect(form.get_by_label("Amount (points)")).to_be_focused()
    shop.keyboard.type("80")
    form.get_by_role("button", name="Take the payment").click()
    shop.wait_for_url(re.compile(r"/pin-pad/[A-Za-z0-9_-]+$"))
    assert shop.get_by_test_id("pad-amount").inner_text().startswith("80")
    screenshot(shop, "card-pin-pad-en-360")

    # The resident types the PIN on the pad; the shop's page goes on to the charge.
    for d in PIN:
        shop.locator(f".pad-key[data-digit='{d}']").click()
    shop.locator(".pad-key.primary").click()
    shop.wait_for_url(re.compile(rf"{desk}/charges/\d+$"))
    assert shop.get_by_test_id("charge-amount").inner_text().startswith("80")
    assert PIN not in shop.content()


def test_a_refused_camera_says_so_and_typing_the_code_still_works(
    app, world, live_server, camera, tmp_path, screenshot
):
    set_balance(app, world, world.customer, 500)
    code = _customer_code(app, world)
    for locale, refused, scan, take in (
        ("ja-JP", "カメラの使用が許可されていません", "カメラで読み取る", "支払いを受ける"),
        ("en-GB", "The camera is not allowed", "Scan with camera", "Take the payment"),
    ):
        phone = camera(qr_y4m(code, tmp_path / "code.y4m"), allow=False, locale=locale)
        shop = phone.new_page()
        desk = f"/merchants/{world.merchant_id}"
        _log_in(shop, live_server.url, world.clerk, desk)
        form = shop.locator("form[action$='/charge-customer']")
        form.get_by_role("button", name=scan).click()
        expect(form.get_by_text(refused)).to_be_visible(timeout=60_000)
        expect(form.locator("#customer_code")).to_have_value("")
        expect(form.locator("#customer_code")).to_be_focused()
        assert_fits_the_phone(shop)
        screenshot(shop, f"refused-{locale}-360")
        if locale == "en-GB":  # typed entry takes the payment (the code pays once)
            form.locator("#c-amount").fill("50")
            form.locator("#customer_code").fill(code)
            form.get_by_role("button", name=take).click()
            shop.wait_for_url(re.compile(rf"{desk}/charges/\d+$"))
            assert shop.get_by_test_id("charge-amount").inner_text().startswith("50")


def test_a_camera_that_sees_no_code_keeps_looking_until_the_clerk_stops_it(
    app, world, live_server, camera, tmp_path
):
    phone = camera(qr_y4m(None, tmp_path / "blank.y4m"), locale="en-GB")
    shop = phone.new_page()
    desk = f"/merchants/{world.merchant_id}"
    _log_in(shop, live_server.url, world.clerk, desk)
    form = shop.locator("form[action$='/charge-customer']")
    form.get_by_role("button", name="Scan with camera").click()
    expect(form.get_by_text("Point the camera at the QR code.")).to_be_visible(timeout=60_000)
    video = form.locator("video")
    expect(video).to_be_visible()
    # Frames are being read (the video plays) and none of them fills anything in.
    shop.wait_for_function("v => v.currentTime > 1", arg=video.element_handle())
    expect(form.locator("#customer_code")).to_have_value("")
    form.get_by_role("button", name="Stop the camera").click()
    expect(video).to_be_hidden()
    assert video.evaluate("v => v.srcObject") is None  # the camera is let go
    expect(form.get_by_role("button", name="Scan with camera")).to_be_visible()
    expect(form.locator("#customer_code")).to_be_focused()
