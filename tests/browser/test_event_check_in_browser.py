"""Issue 14 §4's "Done when" in chromium, on the whole back end (web, a real Celery worker,
beat, anvil): town staff create an event in the console and open its check-in QR; a signed-in
attendee on a phone (360 px, Japanese) opens the QR's link, checks in, sees the points on
their way and then arrived (the page reloads itself), opens the link again and is told they
already checked in; the points are on chain once. Every wait is for a state the page shows.

Nothing is sent until the attendee has seen "on their way": the outbox does not dispatch on
commit here and beat starts ticking only then, so the pending state is certain, not a race."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest

from backend.accounts.models import User
from backend.core.db import get_db
from backend.events.services import jst_input
from backend.regions.models import Town
from tests.conftest import BeatTicker
from tests.console.conftest import EMAILS
from tests.events.conftest import app as app  # noqa: F401 - the fixtures, reused
from tests.events.conftest import town as town  # noqa: F401
from tests.issuing.conftest import chain_balance
from tests.merchants.conftest import PASSWORD
from tests.pages import assert_fits_the_phone, wait_for_path

pytestmark = pytest.mark.heavy

STATE_TIMEOUT = 120_000  # ms; the machine may be shared with a full test run


def _log_in(page, base: str, email: str, path: str) -> None:
    page.goto(f"{base}/login?next={path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("form.form button[type=submit]").click()


def test_staff_create_an_event_and_an_attendee_checks_in_once(
    app, town, live_server, celery_worker, browser, w3, screenshot
):
    base = live_server.url
    now = dt.datetime.now(dt.UTC)
    desk = browser.new_context(locale="ja-JP")
    phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP")
    try:
        staff = desk.new_page()
        path = "/towns/sarabetsu/admin/events"
        _log_in(staff, base, EMAILS["staff"], path)
        wait_for_path(staff, path)
        staff.fill("#new-name_ja", "秋の収穫祭")
        staff.fill("#new-name_en", "Autumn harvest fair")
        staff.fill("#new-place_ja", "更別村役場前広場")
        staff.fill("#new-starts_at", jst_input(now - dt.timedelta(minutes=5)))
        staff.fill("#new-ends_at", jst_input(now + dt.timedelta(hours=3)))
        staff.fill("#new-points", "300")
        staff.get_by_test_id("new-event-form").locator("button[type=submit]").click()
        staff.get_by_test_id("event-notice").wait_for()
        assert staff.get_by_test_id("event-name").inner_text() == "秋の収穫祭"
        staff.get_by_test_id("show-qr").click()
        link = staff.get_by_test_id("check-in-link").inner_text().strip()
        assert staff.locator("figure.event-qr svg.qr").count() == 1
        screenshot(staff, "1-event-qr")
        check_in_path = urlsplit(link).path

        attendee = phone.new_page()
        attendee.goto(link)  # not signed in yet: the log-in page, then back to the link
        wait_for_path(attendee, "/login")
        attendee.fill("#email", EMAILS["customer"])
        attendee.fill("#password", PASSWORD)
        attendee.locator("form.form button[type=submit]").click()
        wait_for_path(attendee, check_in_path)
        assert attendee.get_by_test_id("event-name").inner_text() == "秋の収穫祭"
        assert "（日本時間）" in attendee.content()  # Japan time, labelled
        button = attendee.get_by_test_id("check-in-form").locator("button")
        assert "300" in button.inner_text()
        assert_fits_the_phone(attendee)
        screenshot(attendee, "2-check-in-ja-360")
        button.click()
        attendee.get_by_test_id("checked-in").wait_for()
        state = attendee.get_by_test_id("points-state")
        assert state.get_attribute("data-points-state") == "pending"
        assert_fits_the_phone(attendee)
        screenshot(attendee, "3-pending-ja-360")

        with BeatTicker(app):  # now the worker sends, mines, reads receipts and indexes
            attendee.locator('[data-testid=points-state][data-points-state="confirmed"]').wait_for(
                timeout=STATE_TIMEOUT
            )
        assert "300" in attendee.get_by_test_id("points-state").inner_text()
        screenshot(attendee, "4-arrived-ja-360")

        attendee.goto(link)  # scanning the QR again
        attendee.get_by_test_id("already-checked-in").wait_for()
        assert attendee.get_by_test_id("check-in-form").count() == 0
        assert_fits_the_phone(attendee)
        screenshot(attendee, "5-already-ja-360")

        staff.goto(f"{base}{path}")
        staff.get_by_test_id("console-events").locator("a").first.click()
        assert staff.get_by_test_id("attendee-count").inner_text() == "1"
        row = staff.get_by_test_id("attendees").locator("li")
        assert row.count() == 1 and row.get_attribute("data-points-state") == "confirmed"
    finally:
        desk.close()
        phone.close()
    with app.app_context():
        s = get_db().session
        holder = s.get(User, town.user_id("customer")).addresses[0].address
        points = s.get(Town, town.town_id).points_address
    assert chain_balance(w3, points, holder) == 300
