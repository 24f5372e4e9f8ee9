"""Points bought by card with a premium, on real anvil with the test provider: the buy page,
its checkout, the provider's signed webhook (replayed: one issue), the points issued under the
paid programme via the outbox, and the lot with its expiry on the points page; declined cards,
bad signatures, amounts that differ, and issues that keep failing (refunded); refusals that
change nothing."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.points.lots import jst_day
from backend.points.services import points_service
from backend.premium.purchases import CHECKOUT_TTL, MAX_ISSUE_ATTEMPTS
from backend.premium.services import payment_provider, purchase_service
from backend.regions.models import Town
from tests.chain_admin import as_role
from tests.premium.conftest import (
    Person,
    actions,
    counts,
    drive,
    public_id_of,
    purchase,
    webhook,
)

JST = dt.timezone(dt.timedelta(hours=9))


def _lots(app, user_id: int, town_id: int):
    with app.app_context():
        s = get_db().session
        user = s.get(User, user_id)
        summary = points_service().summary(
            s.get(Town, town_id), points_service()._custodial_address(user)
        )
        return summary.lots, summary.confirmed


def test_a_paid_purchase_issues_the_premium_once_and_the_points_page_shows_the_lot(
    app, w3, town_id, offer, buyer_id
):
    me = Person(app, "buyer@example.com")
    page = me.get("/towns/sarabetsu/points/buy").get_data(as_text=True)
    assert "20% more points than you pay" in page and "1,000 yen → 1,200 points" in page
    resp = me.buy(1000)
    pid = public_id_of(resp)
    assert resp.headers["Location"] == f"/points/buy/test-checkout/{pid}"
    p = purchase(app, pid)
    assert (p.status, p.yen, p.points, p.programme_id, p.expiry_days) == (
        "pending_payment",
        1000,
        1200,
        2,
        180,
    )
    results = [webhook(app, pid).get_json()["result"] for _ in range(10)]
    assert results == ["processed"] + ["duplicate"] * 9
    with app.app_context():
        calls = (
            get_db()
            .session.scalars(
                sa.select(OutboxTx).where(OutboxTx.idempotency_key.like(f"premium:{pid}:%"))
            )
            .all()
        )
    assert len(calls) == 1 and calls[0].function == "issue"
    assert actions(app, p.id) == ["points.issue", "premium.sale"]
    assert purchase(app, pid).status == "processing"
    assert "Your points are being issued" in me.get(f"/points/purchases/{pid}").get_data(
        as_text=True
    )

    drive(app, w3)
    p = purchase(app, pid)
    assert p.status == "issued" and p.issued_at is not None
    lots, balance = _lots(app, buyer_id, town_id)
    assert balance == 1200
    (lot,) = lots
    assert (lot.amount, lot.reason, lot.programme_id) == (1200, "premium", 2)
    issue_day = jst_day(w3.eth.get_block("latest")["timestamp"])
    # Bought on JST day D, usable through D + 180 (expires at 00:00 JST of D + 181).
    assert lot.last_day == dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + issue_day + 180)
    html = me.get("/points").get_data(as_text=True)
    assert "Premium points" in html and "1,200" in html and "Use by (Japan time)" in html
    assert lot.last_day.isoformat() in html
    assert "Done! 1,200 points" in me.get(f"/points/purchases/{pid}").get_data(as_text=True)
    # The month's limit counts the purchase: 29,000 yen left.
    assert "29,000 yen left this month" in me.get("/towns/sarabetsu/points/buy").get_data(
        as_text=True
    )


def test_a_bad_signature_changes_nothing(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    pid = public_id_of(me.buy(1000))
    before = counts(app)
    with app.app_context():
        payload, _ = payment_provider().signed_event(pid, "paid", 1000)
    resp = app.test_client().post(
        "/api/payments/webhooks/test", data=payload, headers={"X-Test-Signature": "00" * 32}
    )
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_signature"
    assert counts(app) == before
    assert purchase(app, pid).status == "pending_payment"


def test_a_declined_card_issues_nothing_and_gives_the_limit_back(app, w3, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    pid = public_id_of(me.buy(10000))
    assert counts(app)["reserved_yen"] == 20000  # the town's counter and the person's
    # The test checkout page's "Decline" goes through the same signed webhook.
    keys = me.keys(f"/points/buy/test-checkout/{pid}")
    resp = me.post(f"/points/buy/test-checkout/{pid}", {"choice": "declined"}, keys)
    assert resp.status_code == 302
    assert purchase(app, pid).status == "declined"
    assert webhook(app, pid, amount=10000).get_json()["result"] == "duplicate"  # too late
    drive(app, w3)
    c = counts(app)
    assert c["reserved_yen"] == 0 and c["outbox_txs"] == 0
    assert _lots(app, buyer_id, town_id) == ([], 0)
    assert "declined" in me.get(f"/points/purchases/{pid}").get_data(as_text=True)


def test_a_payment_of_another_amount_is_refunded_and_issues_nothing(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    pid = public_id_of(me.buy(1000))
    assert webhook(app, pid, amount=999).get_json()["result"] == "processed"
    p = purchase(app, pid)
    assert p.status == "refunded" and p.refund_ref == f"re_test_pay_test_{pid}"
    assert actions(app, p.id) == ["payment.refund"]
    c = counts(app)
    assert c["outbox_txs"] == 0 and c["reserved_yen"] == 0


def test_an_issue_that_keeps_failing_is_retried_then_the_card_payment_is_refunded(
    app, w3, deployed, town_id, offer, buyer_id
):
    me = Person(app, "buyer@example.com")
    pid = public_id_of(me.buy(2000))
    # The programme is closed on chain behind the console's back: every issue reverts.
    points = w3.eth.contract(
        address=deployed.address("towns.sarabetsu.RegionPoints"),
        abi=deployed_abi("RegionPoints"),
    )
    as_role(w3, "town_settings", points.functions.setProgramme(2, 180, False))
    assert webhook(app, pid, amount=2000).get_json()["result"] == "processed"
    for _ in range(MAX_ISSUE_ATTEMPTS + 1):
        drive(app, w3)
    p = purchase(app, pid)
    assert p.status == "refunded" and p.issue_attempts == MAX_ISSUE_ATTEMPTS
    assert "RegionPointsProgrammeInactive" in (p.error or "")
    with app.app_context():
        assert payment_provider().refunds == [f"pay_test_{pid}"]
    assert actions(app, p.id) == ["payment.refund", "points.issue", "points.issue"] + [
        "points.issue",
        "premium.sale",
    ]
    assert counts(app)["reserved_yen"] == 0
    assert _lots(app, buyer_id, town_id) == ([], 0)
    assert "refunded" in me.get(f"/points/purchases/{pid}").get_data(as_text=True)
    # Reconciling again changes nothing (the task may run twice).
    before = counts(app)
    with app.app_context():
        assert purchase_service().reconcile() == {"retried": 0, "refunded": 0, "expired": 0}
    assert counts(app) == before


def deployed_abi(name: str):
    from backend.chain.registry import artifact

    return artifact(name).abi


def test_an_unpaid_checkout_expires_and_a_late_payment_is_checked_against_the_limit_again(
    app, w3, town_id, offer, buyer_id
):
    me = Person(app, "buyer@example.com")
    late = public_id_of(me.buy(10000))
    with app.app_context():
        s = get_db().session
        from backend.premium.models import PremiumPurchase

        s.execute(
            sa.update(PremiumPurchase)
            .where(PremiumPurchase.public_id == late)
            .values(created_at=dt.datetime.now(dt.UTC) - CHECKOUT_TTL - dt.timedelta(minutes=1))
        )
        s.commit()
        assert purchase_service().reconcile()["expired"] == 1
    assert purchase(app, late).status == "expired" and counts(app)["reserved_yen"] == 0
    # The limit is used up by new purchases meanwhile: the late payment no longer fits.
    for _ in range(3):
        pid = public_id_of(me.buy(10000))
        assert webhook(app, pid, amount=10000).get_json()["result"] == "processed"
    assert webhook(app, late, amount=10000).get_json()["result"] == "processed"
    p = purchase(app, late)
    assert p.status == "refunded" and "limit" in (p.error or "")
    assert actions(app, p.id) == ["payment.refund"]


def test_a_late_payment_within_the_limit_is_issued(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    late = public_id_of(me.buy(3000))
    with app.app_context():
        s = get_db().session
        from backend.premium.models import PremiumPurchase

        s.execute(
            sa.update(PremiumPurchase)
            .where(PremiumPurchase.public_id == late)
            .values(created_at=dt.datetime.now(dt.UTC) - CHECKOUT_TTL - dt.timedelta(minutes=1))
        )
        s.commit()
        purchase_service().reconcile()
    assert webhook(app, late, amount=3000).get_json()["result"] == "processed"
    p = purchase(app, late)
    assert p.status == "processing" and p.reserved_month is not None
    assert counts(app)["reserved_yen"] == 6000


def test_refusals_are_4xx_and_change_nothing(app, town_id, staff_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    for _ in range(3):  # the month's 30,000 yen, reserved
        public_id_of(me.buy(10000))
    before = counts(app)
    cases = [
        ("1500", 400, "in steps of 1,000 yen"),
        ("0", 400, "in steps"),
        ("-1000", 400, "in steps"),
        ("20000", 400, "in steps"),
        ("9" * 40, 400, "in steps"),
        ("１０００", 400, "in steps"),
        ("abc", 400, "in steps"),
        ("", 400, "in steps"),
        ("1000", 409, "you can buy 0 yen more this month"),
    ]
    for yen, status, text in cases:
        resp = me.buy(yen)
        assert resp.status_code == status, (yen, resp.status_code)
        assert text in resp.get_data(as_text=True), (
            yen,
            re.findall(r"role=\"alert\"[^<]*<", resp.get_data(as_text=True)),
        )
        assert counts(app) == before, yen
    url = "/towns/sarabetsu/points/buy"
    no_key = me.post(url, {"yen": "1000"}, {"csrf_token": me.keys(url)["csrf_token"]})
    assert no_key.status_code == 400 and counts(app) == before
    # The town switches the sale off: 409, nothing written.
    from tests.premium.conftest import set_offer

    set_offer(app, town_id, staff_id, active="")
    before = counts(app)
    resp = me.buy(1000)
    assert resp.status_code == 409 and "does not sell points" in resp.get_data(as_text=True)
    assert counts(app) == before


def test_a_replayed_buy_form_is_the_same_purchase(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    keys = me.keys("/towns/sarabetsu/points/buy")
    first = public_id_of(me.buy(1000, keys))
    before = counts(app)
    assert public_id_of(me.buy(1000, keys)) == first
    assert counts(app) == before


def test_someone_else_cannot_see_or_pay_a_purchase(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    pid = public_id_of(me.buy(1000))
    from tests.premium.conftest import add_user

    add_user(app, "other@example.com")
    other = Person(app, "other@example.com")
    assert other.get(f"/points/purchases/{pid}").status_code == 404
    assert other.get(f"/points/buy/test-checkout/{pid}").status_code == 404
    keys = other.keys("/towns/sarabetsu/points/buy")
    before = counts(app)
    resp = other.post(f"/points/buy/test-checkout/{pid}", {"choice": "paid"}, keys)
    assert resp.status_code == 404 and counts(app) == before
    assert purchase(app, pid).status == "pending_payment"
    assert app.test_client().get(f"/points/purchases/{pid}").status_code == 302  # to log in


def test_the_town_monthly_cap_is_shared_by_everyone(app, town_id, staff_id, buyer_id):
    from tests.premium.conftest import add_user, set_offer

    set_offer(app, town_id, staff_id, town_month_yen="3000")
    me = Person(app, "buyer@example.com")
    public_id_of(me.buy(2000))
    add_user(app, "other@example.com")
    other = Person(app, "other@example.com")
    before = counts(app)
    resp = other.buy(2000)
    assert resp.status_code == 409 and "sold out" in resp.get_data(as_text=True)
    assert counts(app) == before
    public_id_of(other.buy(1000))  # what is left of the town's month still sells
    assert counts(app)["reserved_yen"] == 3000 * 2


def test_checkouts_are_rate_limited_per_person(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    keys = me.keys("/towns/sarabetsu/points/buy")
    answers = [me.buy("x", keys).status_code for _ in range(31)]
    assert answers == [400] * 30 + [429]
    assert counts(app)["premium_purchases"] == 0


def test_cancelling_an_unpaid_checkout_gives_the_limit_back_at_once(app, town_id, offer, buyer_id):
    me = Person(app, "buyer@example.com")
    pid = public_id_of(me.buy(10000))
    assert "20,000 yen left" in me.get("/towns/sarabetsu/points/buy").get_data(as_text=True)
    keys = me.keys(f"/points/purchases/{pid}")
    assert me.post(f"/points/purchases/{pid}/cancel", {}, keys).status_code == 302
    assert purchase(app, pid).status == "expired" and counts(app)["reserved_yen"] == 0
    assert "30,000 yen left" in me.get("/towns/sarabetsu/points/buy").get_data(as_text=True)
    # Cancelling again, or someone else cancelling, changes nothing.
    before = counts(app)
    assert me.post(f"/points/purchases/{pid}/cancel", {}, keys).status_code == 302
    from tests.premium.conftest import add_user

    add_user(app, "other@example.com")
    other = Person(app, "other@example.com")
    resp = other.post(f"/points/purchases/{pid}/cancel", {}, other.keys("/points"))
    assert resp.status_code == 404 and counts(app) == before
    # The provider completes the payment anyway: a late payment, within the limit: issued.
    assert webhook(app, pid, amount=10000).get_json()["result"] == "processed"
    assert purchase(app, pid).status == "processing" and counts(app)["reserved_yen"] == 20000
