"""Issue 13's "Done when" journey in chromium, on the whole platform (web, real Celery worker,
beat, anvil), through the pages only:

1. the platform operator creates a third town, 十勝湖町 (tokachiko), from
   /operator/towns/new and follows the progress page until it is live;
2. its first admin follows the mailed invitation and appoints staff on the People page;
3. the admin creates a programme, issues points by CSV to 50 people (upload → preview → confirm →
   progress done), creates a collection with an uploaded image and a points listing with an
   allowlist;
4. a tourist on the allowlist buys with the points they were issued;
5. 更別村 and 洞爺湖町 agree a partnership (one staff of each town), and a 更別村 shop takes
   洞爺湖町 points at /pay/<code>;
6. both towns' staff see the clearing statement.

Accounts (operator, the 50 recipients, the partner towns' staff, shop and customer) are made
through the services: their own pages are covered by their own tests. Every wait is for a state
(a page's attribute or text, or a row in the database), never for time; the sale window and the
clearing month come from the chain's clock.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from collections.abc import Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from backend.core.db import get_db
from backend.onboarding.services import add_operator
from backend.partners.models import PartnerPayment
from backend.points.models import TownProgramme
from backend.regions.models import Town
from backend.shop.models import AllowlistEntry, Listing
from tests.dao.test_dao_journey import log_in
from tests.merchants.conftest import PASSWORD
from tests.onboarding.conftest import signup
from tests.pages import assert_fits_the_phone, wait_for_path
from tests.partners.conftest import CLERK, CUSTOMER, SARABETSU_STAFF, TOYAKO_STAFF
from tests.partners.conftest import towns as towns  # noqa: F401 - the fixture, reused

pytestmark = pytest.mark.heavy

JST = ZoneInfo("Asia/Tokyo")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
SLUG = "tokachiko"
OPERATOR = "operator@example.com"
MAYOR = "mayor@tokachiko.example"
NEW_STAFF = "clerk@tokachiko.example"
PEOPLE = [f"person{i:02d}@example.com" for i in range(1, 51)]
TOURIST = PEOPLE[6]  # one of the 50, and the only one on the allowlist
EACH = 200  # points issued to each of the 50
PRICE = 150  # the listing's price in points
# Seconds, an upper bound (53 set-up transactions under a full suite's load; about 10 s alone),
# and half the test's own limit: a state that never comes fails with the page and the outbox
# report (tests/outbox_report.py), not with pytest-timeout's thread dump.
STATE_TIMEOUT = 150.0


@pytest.fixture
def app(make_app, deployed, deployments_dir, tmp_path, smtp_server):
    """The app on its own copy of the deployments file (the new town is recorded there), with
    mail going to the test SMTP server (the first admin's invitation)."""
    own = tmp_path / "deployments"
    shutil.copytree(deployments_dir, own)
    return make_app(deployments_dir=own, **smtp_server.settings)


def _until(check: Callable[[], object], what: str, timeout: float = STATE_TIMEOUT) -> object:
    """Poll a state until it holds (the worker and the indexer move it); return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _reload_until(page, check: Callable[[], bool], what: str) -> None:
    """Reload a page that does not poll by itself until it shows the state."""

    def shown() -> bool:
        page.reload()
        return check()

    _until(shown, what)


def _db(app, query: Callable[[sa.orm.Session], object]) -> object:
    with app.app_context():
        session = get_db().session
        try:
            return query(session)
        finally:
            session.commit()


def _chain_now(w3) -> dt.datetime:
    return dt.datetime.fromtimestamp(w3.eth.get_block("latest")["timestamp"], dt.UTC)


def _sale_window(w3) -> tuple[str, str]:
    """A sale window open by both the chain's clock and the wall clock, as the form takes it
    (datetime-local, Japan time, to the minute)."""
    wall = dt.datetime.now(dt.UTC)
    start = min(_chain_now(w3), wall) - dt.timedelta(hours=1)
    end = max(_chain_now(w3), wall) + dt.timedelta(days=30)
    fmt = "%Y-%m-%dT%H:%M"
    return start.astimezone(JST).strftime(fmt), end.astimezone(JST).strftime(fmt)


def _phone(browser, locale: str = "ja-JP"):
    return browser.new_context(viewport={"width": 360, "height": 740}, locale=locale)


def test_a_third_town_runs_itself_and_two_towns_share_points(
    app, towns, platform, browser, w3, mailbox, screenshot
):
    base = platform.url
    # Permits run on the chain's clock (tests/shop/test_chain_clock.py), but the shop checks a
    # listing's window on the server's clock and the chain on its own: a chain clock left far
    # ahead by another test would disagree. Every test that moves the clock reverts it (the w3
    # fixture).
    skew = abs((_chain_now(w3) - dt.datetime.now(dt.UTC)).total_seconds())
    assert skew < 1800, f"the chain's clock is {skew:.0f} s away from the wall clock"
    signup(app, OPERATOR)
    for email in (NEW_STAFF, *PEOPLE):
        signup(app, email)
    with app.app_context():
        add_operator(get_db().session(), OPERATOR)
    contexts = []
    try:
        # 1. The operator creates the town from the UI and follows its set-up until it is live.
        operator_ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP")
        contexts.append(operator_ctx)
        op = operator_ctx.new_page()
        op.goto(f"{base}/login?next=/operator/towns/new")
        op.fill("#email", OPERATOR)
        op.fill("#password", PASSWORD)
        op.locator("form.form button[type=submit]").click()
        wait_for_path(op, "/operator/towns/new")
        for field, value in [
            ("slug", SLUG), ("name_ja", "十勝湖町"), ("name_en", "Lake Tokachi"),
            ("prefecture_ja", "北海道"), ("prefecture_en", "Hokkaido"), ("symbol", "TKC"),
            ("admin_email", MAYOR),
        ]:  # fmt: skip
            op.fill(f"#{field}", value)
        op.locator("form.form button[type=submit]").click()
        wait_for_path(op, f"/operator/towns/{SLUG}")
        state = op.wait_for_selector(
            "#setup-state:is([data-state=live], [data-state=failed])",
            timeout=STATE_TIMEOUT * 1000,
        )
        assert state is not None and state.get_attribute("data-state") == "live", op.inner_text(
            "main"
        )
        assert (
            op.locator("#setup-steps li[data-state=confirmed]").count()
            == op.locator("#setup-steps li").count()
        )
        screenshot(op, "1-town-live-ja-1280")

        # 2. Its first admin follows the invitation and appoints staff (360 px, Japanese).
        mail = mailbox.wait_for(MAYOR, timeout=STATE_TIMEOUT)
        admin_ctx = _phone(browser)
        contexts.append(admin_ctx)
        admin = admin_ctx.new_page()
        admin.goto(base + urlsplit(mail.link()).path)
        admin.fill("#display_name", "町長")
        admin.fill("#password", PASSWORD)
        admin.locator("form.form button[type=submit]").click()
        wait_for_path(admin, f"/towns/{SLUG}/admin")
        admin.goto(f"{base}/towns/{SLUG}/admin/people")
        admin.fill("#appoint-email", NEW_STAFF)
        admin.select_option("#appoint-role", "staff")
        admin.get_by_role("button", name="任命する", exact=True).click()
        admin.wait_for_url("**/admin/people?notice=appointed")
        assert NEW_STAFF in admin.get_by_test_id("role-staff").inner_text()
        assert_fits_the_phone(admin)
        screenshot(admin, "2-staff-appointed-ja-360")

        # 3a. A programme, confirmed on chain (the page polls its state by itself).
        admin.goto(f"{base}/towns/{SLUG}/admin/programmes")
        admin.select_option("#new-kind", "thank-you")
        admin.fill("#new-name_ja", "湖の清掃のお礼")
        admin.fill("#new-name_en", "Lake clean-up thanks")
        admin.fill("#new-cap_per_person_day", "1000")
        admin.select_option("#new-expiry_days", "30")
        admin.get_by_role("button", name="プログラムを作成する").click()
        admin.wait_for_url(lambda url: "notice=created" in url)
        pid = _db(
            app,
            lambda s: s.scalar(
                sa.select(TownProgramme.programme_id).where(
                    TownProgramme.name_en == "Lake clean-up thanks"
                )
            ),
        )
        assert pid is not None
        admin.locator(f'[data-testid="state-{pid}"][data-setting-status="confirmed"]').wait_for(
            timeout=STATE_TIMEOUT * 1000
        )
        assert_fits_the_phone(admin)
        screenshot(admin, "3-programme-confirmed-ja-360")

        # 3b. Points to 50 people from a CSV: upload → preview → confirm → progress done.
        admin.goto(f"{base}/towns/{SLUG}/admin/issue")
        csv = ("受取人,ポイント,メモ\n" + "".join(f"{e},{EACH},清掃\n" for e in PEOPLE)).encode()
        admin.set_input_files(
            "#file", files=[{"name": "lake.csv", "mimeType": "text/csv", "buffer": csv}]
        )
        admin.select_option("#programme-upload", str(pid))
        admin.fill("#reason-upload", "湖の清掃のお礼")
        admin.get_by_role("button", name="プレビュー").click()
        admin.get_by_test_id("preview-summary").wait_for()
        total = f"{EACH * len(PEOPLE):,}"
        assert admin.get_by_test_id("batch-total").inner_text() == total
        admin.get_by_role("button", name=f"確定して {total} ポイントを発行する").click()
        admin.locator('[data-testid=batch-state][data-state="done"]').wait_for(
            timeout=STATE_TIMEOUT * 1000
        )
        assert admin.locator('[data-row-status="confirmed"]').count() == len(PEOPLE)
        assert_fits_the_phone(admin)
        screenshot(admin, "4-issued-ja-360")

        # 3c. A collection with an uploaded image, live on chain.
        admin.goto(f"{base}/towns/{SLUG}/admin/collections/new")
        admin.select_option("#category", "event_ticket")
        admin.fill("#slug", "lake-fest")
        admin.fill("#symbol", "LKF")
        admin.fill("#name_ja", "湖上祭りチケット")
        admin.fill("#name_en", "Lake Festival Ticket")
        admin.fill("#description_ja", "湖上祭りの入場券です。")
        admin.fill("#description_en", "Entry to the lake festival.")
        admin.fill("#max_supply", "20")
        admin.set_input_files(
            "#image", files=[{"name": "lake.png", "mimeType": "image/png", "buffer": PNG}]
        )
        admin.get_by_role("button", name="コレクションを作成する").click()
        admin.wait_for_url(re.compile(rf"/towns/{SLUG}/admin/collections/\d+$"))
        collection_url = admin.url
        status = admin.get_by_test_id("collection-status")
        _reload_until(admin, lambda: status.get_attribute("data-status") == "live", "collection")

        # ... and a listing in points for an allowlist of one (the tourist, by e-mail).
        start, end = _sale_window(w3)
        listing_form = admin.locator("form[action$='/listings']")
        admin.select_option("#payment_kind", "points")
        admin.fill("#price", str(PRICE))
        admin.fill("#supply", "5")
        admin.fill("#wallet_cap", "1")
        admin.fill("#starts_at", start)
        admin.fill("#ends_at", end)
        listing_form.locator("input[name=allowlist_only]").check()
        allowlist = f"email\n{TOURIST}\n".encode()
        admin.set_input_files(
            "#allowlist", files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": allowlist}]
        )
        # The form posts and comes back to the collection's own URL: wait for that navigation.
        with admin.expect_navigation(url=collection_url):
            listing_form.locator("button[type=submit]").click()
        assert admin.get_by_test_id("error").count() == 0

        def listed_and_signed() -> bool:
            def q(s):
                listing = s.scalar(sa.select(Listing).where(Listing.allowlist_only.is_(True)))
                if listing is None or listing.chain_listing_id is None:
                    return False
                sigs = s.scalars(
                    sa.select(AllowlistEntry.signature).where(
                        AllowlistEntry.listing_id == listing.id
                    )
                ).all()
                return len(sigs) == 1 and sigs[0] is not None

            return bool(_db(app, q))

        _until(listed_and_signed, "the listing on chain and its voucher signed")
        admin.reload()
        assert admin.get_by_test_id("collection-status").get_attribute("data-status") == "live"
        assert_fits_the_phone(admin)
        screenshot(admin, "5-collection-listing-ja-360")
        img = admin.request.get(f"{base}/meta/{SLUG}/lake-fest/image")
        assert img.ok and img.body() == PNG

        # 4. The tourist on the allowlist buys with the points they were issued.
        tourist_ctx = _phone(browser)
        contexts.append(tourist_ctx)
        tourist = tourist_ctx.new_page()
        tourist.goto(f"{base}/login?next=/points")
        tourist.fill("#email", TOURIST)
        tourist.fill("#password", PASSWORD)
        tourist.locator("form.form button[type=submit]").click()
        wait_for_path(tourist, "/points")
        # /points lists every town the tourist has points in: this town's section.
        balance = tourist.locator("section.points-town", has_text="十勝湖町").get_by_test_id(
            "balance"
        )
        _reload_until(tourist, lambda: balance.inner_text() == str(EACH), "the tourist's points")
        tourist.goto(f"{base}/towns/{SLUG}")
        assert "湖上祭りチケット" in tourist.content()
        assert_fits_the_phone(tourist)
        screenshot(tourist, "6-shop-ja-360")
        tourist.locator("button[data-buy=points]").click()
        tourist.wait_for_url("**/shop/orders/**")
        tourist.locator(".status-completed").wait_for(timeout=STATE_TIMEOUT * 1000)
        screenshot(tourist, "7-bought-ja-360")
        tourist.goto(f"{base}/my/collection")
        assert "湖上祭りチケット #1" in tourist.content()
        tourist.goto(f"{base}/points")
        _reload_until(
            tourist,
            lambda: balance.inner_text() == str(EACH - PRICE),
            "the tourist's points after the purchase",
        )

        # 5. 更別村 and 洞爺湖町 agree a partnership, one staff of each town ...
        sara = log_in(browser, base, SARABETSU_STAFF, 360, 740, "ja")
        contexts.append(sara.context)
        sara.goto(f"{base}/towns/sarabetsu/admin/partners")
        sara.select_option("#partner-town", "toyako")
        sara.get_by_role("button", name="提案する", exact=True).click()
        sara.wait_for_selector('[data-testid="partnership-toyako"]')
        toya = log_in(browser, base, TOYAKO_STAFF, 360, 740, "ja")
        contexts.append(toya.context)
        toya.goto(f"{base}/towns/toyako/admin/partners")
        toya.get_by_role("button", name="提携を承認する").click()
        toya.wait_for_selector('[data-testid="chain-mine"]')
        partnership = toya.get_by_test_id("partnership-status")
        _reload_until(toya, lambda: partnership.inner_text() == "稼働中", "the partnership")
        assert_fits_the_phone(toya)
        screenshot(toya, "8-partners-ja-360")

        # ... then a 更別村 shop charges 30 points and the customer pays with 洞爺湖町 points.
        shop_ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        contexts.append(shop_ctx)
        shop = shop_ctx.new_page()
        shop.goto(f"{base}/login?next=/merchants/{towns.merchant_id}")
        shop.fill("#email", CLERK)
        shop.fill("#password", PASSWORD)
        shop.locator("form.form button[type=submit]").click()
        wait_for_path(shop, f"/merchants/{towns.merchant_id}")
        shop.fill("#amount", "30")
        shop.get_by_role("button", name="Show the payment QR").click()
        shop.wait_for_url(re.compile(r"/charges/\d+$"))
        code = shop.get_by_test_id("charge-code").inner_text()
        customer = log_in(browser, base, CUSTOMER, 360, 740, "ja")
        contexts.append(customer.context)
        customer.goto(f"{base}/pay/{code}")
        customer.locator('[data-testid="points-town-toyako"]').check()
        assert_fits_the_phone(customer)
        screenshot(customer, "9-pay-toyako-points-ja-360")
        customer.get_by_role("button", name="30 ポイントを支払う").click()
        customer.wait_for_selector('[data-testid="paid-with"]')
        shop.get_by_test_id("paid").wait_for(state="visible", timeout=STATE_TIMEOUT * 1000)

        # 6. Both towns' staff see the clearing statement of the payment's month (chain time).
        month = _until(
            lambda: _db(app, lambda s: s.scalar(sa.select(PartnerPayment.month))),
            "the partner payment indexed",
        )
        owes = "洞爺湖町が更別村に30円を支払います。"
        for page, slug in ((sara, "sarabetsu"), (toya, "toyako")):
            page.goto(f"{base}/towns/{slug}/admin/clearing?month={month}")
            assert owes in page.get_by_test_id("net").inner_text()
            assert_fits_the_phone(page)
            screenshot(page, f"10-clearing-{slug}-ja-360")
    finally:
        for ctx in contexts:
            ctx.close()
    town = _db(app, lambda s: s.scalar(sa.select(Town.name_ja).where(Town.slug == SLUG)))
    assert town == "十勝湖町"
