"""The venue's check-in reads the ticket QR with the phone's camera (issue 15 §2): chromium films
the fan's real ticket code (tests/camera.py), the scanner fills it in and looks the ticket up,
and the venue marks one use. A phone without a camera says so and typing the code still works.
On 360 px phones, in Japanese and English."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.camera import qr_y4m, wait_for_scan
from tests.pages import LiveServer, assert_fits_the_phone, wait_for_path
from tests.shop.shop_helpers import VENUE, bought_card

CHECKIN = "/towns/sarabetsu/checkin"


def _log_in_venue(page, base: str) -> None:
    page.goto(f"{base}/login?next={CHECKIN}")
    page.fill("#email", VENUE[0])
    page.fill("#password", VENUE[1])
    page.locator("form.form button[type=submit]").click()
    wait_for_path(page, CHECKIN)


def test_the_venue_scans_a_ticket_and_marks_one_use(
    shop_app, w3, camera, browser, tmp_path, screenshot
):
    _fan, token = bought_card(shop_app, w3)
    code = token["ticket_code"]
    with LiveServer(shop_app) as server:
        phone = camera(qr_y4m(code, tmp_path / "ticket.y4m"), locale="ja-JP")
        page = phone.new_page()
        _log_in_venue(page, server.url)
        page.get_by_role("button", name="カメラで読み取る").click()

        # The scanner fills the code in and sends the form: the ticket comes back, looked up.
        ticket = page.locator("section.card")
        wait_for_scan(page, ticket)
        expect(page.get_by_label("チケットコード（QRコードを読み取る）")).to_have_value(code)
        expect(ticket.get_by_text("残り 3 回（全 3 回）")).to_be_visible()
        assert_fits_the_phone(page)
        screenshot(page, "1-ticket-read-ja-360")
        ticket.get_by_role("button", name="1回使用済みにする").click()
        expect(page.get_by_role("status")).to_contain_text("1回分を使用済みにしました")
        screenshot(page, "2-one-use-marked-ja-360")

        # The decoder cannot be downloaded (a dropped connection): said so, camera let go.
        page.route(lambda url: "/vendor/zxing-browser.min.js" in url, lambda route: route.abort())
        page.goto(f"{server.url}{CHECKIN}")
        page.get_by_role("button", name="カメラで読み取る").click()
        expect(page.get_by_text("読み取り機能を読み込めませんでした")).to_be_visible(timeout=60_000)
        expect(page.locator(".qr-scan video")).to_be_hidden()
        assert page.locator(".qr-scan video").evaluate("v => v.srcObject") is None

        # A phone with no camera at all (the shared chromium has none): the scanner says so,
        # and the typed code checks the ticket as before.
        plain = browser.new_context(
            viewport={"width": 360, "height": 740}, locale="en-GB", permissions=["camera"]
        )
        try:
            page = plain.new_page()
            _log_in_venue(page, server.url)
            page.get_by_role("button", name="Scan with camera").click()
            expect(page.get_by_text("No camera was found on this device")).to_be_visible(
                timeout=60_000
            )
            assert_fits_the_phone(page)
            screenshot(page, "3-no-camera-en-360")
            page.get_by_label("Ticket code (scan the QR code)").fill(code)
            page.get_by_role("button", name="Check the ticket").click()
            expect(page.locator("section.card")).to_be_visible()
            expect(page.get_by_role("button", name="Mark one use")).to_be_visible()
            # A browser with no camera API (as over plain http on a phone): said so at once.
            page.add_init_script(
                "Object.defineProperty(Navigator.prototype, 'mediaDevices', {get: () => undefined})"
            )
            page.goto(f"{server.url}{CHECKIN}")
            page.get_by_role("button", name="Scan with camera").click()
            expect(
                page.get_by_text("This browser cannot use the camera on this page")
            ).to_be_visible()
            expect(page.get_by_label("Ticket code (scan the QR code)")).to_be_focused()
        finally:
            plain.close()
