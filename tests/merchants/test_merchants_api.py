"""Journey 2 through the JSON API: charge, pay, sales, redeem, settle; and every bad input
refused with a clear error and nothing changed (balances, outbox rows, audit log)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import Charge, Merchant
from backend.points.services import points_service
from tests.merchants.conftest import (
    assert_error,
    customer_code,
    pay_by_card,
    run_chain,
    set_balance,
    snapshot,
    start_card_charge,
)


def _audit_actions(app) -> list[str]:
    with app.app_context():
        return list(get_db().session.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)))


def test_charge_pay_redeem_settle_end_to_end_on_chain(app, world, w3):
    with app.app_context():
        points_service().grant_welcome_points(world.user(world.customer), world.town())
    run_chain(app, w3)
    customer, clerk, staff = (
        world.api(world.customer),
        world.api(world.clerk),
        world.api(world.staff),
    )
    assert customer.get("/api/points").get_json()["towns"][0]["confirmed"] == 500

    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": 300, "idempotency_key": "k-1-abc"}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    charge = r.get_json()["charge"]
    info = customer.get(f"/api/pay/{charge['code']}").get_json()["charge"]
    assert info["amount"] == 300 and info["shop"] == "直売所"
    paid = customer.post(f"/api/pay/{charge['code']}")
    assert paid.status_code == 200 and paid.get_json()["charge"]["status"] == "paying"
    mine = customer.get("/api/points").get_json()["towns"][0]
    assert mine["pending_out"] == 300 and mine["available"] == 200

    run_chain(app, w3)
    status = clerk.get(f"/api/merchants/{world.merchant_id}/charges/{charge['id']}").get_json()
    assert status["charge"]["status"] == "paid"
    assert customer.get("/api/points").get_json()["towns"][0]["confirmed"] == 200
    sales = clerk.get(f"/api/merchants/{world.merchant_id}/sales").get_json()["sales"]
    assert [s["amount"] for s in sales] == [300] and sales[0]["charge_code"] == charge["code"]

    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem", {"amount": 300, "idempotency_key": "r-1-abc"}
    )
    assert r.status_code == 201
    settlement = r.get_json()["settlement"]
    assert settlement["status"] == "redeeming"
    early = staff.post(f"/api/settlements/{settlement['id']}/settle", {"bank_reference": "X"})
    assert_error(early, 409, "settlement_not_ready")
    run_chain(app, w3)
    queue = staff.get("/api/towns/sarabetsu/settlements").get_json()["settlements"]
    assert [(s["id"], s["status"]) for s in queue] == [(settlement["id"], "requested")]
    unapproved = staff.post(f"/api/settlements/{settlement['id']}/settle", {"bank_reference": "X"})
    assert_error(unapproved, 409, "settlement_not_ready")
    ok = staff.post(f"/api/settlements/{settlement['id']}/approve")
    assert ok.status_code == 200 and ok.get_json()["settlement"]["status"] == "approved"
    done = staff.post(
        f"/api/settlements/{settlement['id']}/settle", {"bank_reference": "JP-BANK-0001"}
    )
    assert done.status_code == 200 and done.get_json()["settlement"]["status"] == "settled"
    mine = clerk.get(f"/api/merchants/{world.merchant_id}/settlements").get_json()
    assert mine["settlements"][0]["bank_reference"] == "JP-BANK-0001"
    assert clerk.get(f"/api/merchants/{world.merchant_id}").get_json()["balance"] == 0

    actions = _audit_actions(app)
    for action in ("merchant.register", "points.issue", "points.pay", "points.burn"):
        assert action in actions
    assert actions[-2:] == ["settlement.approve", "settlement.pay"]
    csv = clerk.get(f"/merchants/{world.merchant_id}/statement.csv").get_data(as_text=True)
    assert ",sale,300," in csv and ",redemption,-300," in csv
    assert csv.strip().splitlines()[-1].endswith(",,300,,,,")  # the total (label: its language)


@pytest.mark.parametrize("amount", [0, -5, "abc", 1.5, True, None, "", 10**12])
def test_bad_amounts_are_refused_and_change_nothing(app, world, amount):
    set_balance(app, world, world.customer, 1000)
    clerk = world.api(world.clerk)
    before = snapshot(app)
    for url in ("charges", "redeem"):
        r = clerk.post(
            f"/api/merchants/{world.merchant_id}/{url}",
            {"amount": amount, "idempotency_key": "bad-amount-1"},
        )
        assert_error(r, 400, "invalid_amount")
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charge-customer",
        {"amount": amount, "customer_code": "P1-0000000000", "idempotency_key": "bad-amount-2"},
    )
    assert_error(r, 400, "invalid_amount")
    assert snapshot(app) == before


def test_double_submit_has_one_effect(app, world):
    set_balance(app, world, world.customer, 1000)
    set_balance(app, world, "clerk@example.com", 0)
    clerk, customer = world.api(world.clerk), world.api(world.customer)
    body = {"amount": 100, "idempotency_key": "same-key-1"}
    first = clerk.post(f"/api/merchants/{world.merchant_id}/charges", body).get_json()["charge"]
    again = clerk.post(f"/api/merchants/{world.merchant_id}/charges", body).get_json()["charge"]
    assert first["id"] == again["id"]
    other = clerk.post(f"/api/merchants/{world.merchant_id}/charges", {**body, "amount": 101})
    assert_error(other, 409, "idempotency_key_reused")

    assert customer.post(f"/api/pay/{first['code']}").status_code == 200
    before = snapshot(app)
    again = customer.post(f"/api/pay/{first['code']}")
    assert again.status_code == 200 and again.get_json()["charge"]["status"] == "paying"
    assert snapshot(app) == before  # one transfer, one audit row


def test_merchant_of_another_town_is_refused(app, world):
    other_clerk, other_staff = world.api(world.other_clerk), world.api(world.other_staff)
    before = snapshot(app)
    r = other_clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": 5, "idempotency_key": "x-town-1"}
    )
    assert_error(r, 403, "forbidden")
    r = other_clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem", {"amount": 5, "idempotency_key": "x-town-2"}
    )
    assert_error(r, 403, "forbidden")
    assert_error(other_clerk.get(f"/api/merchants/{world.merchant_id}/sales"), 403, "forbidden")
    r = other_staff.post("/api/towns/sarabetsu/merchants", {"name_ja": "店", "name_en": "Shop"})
    assert_error(r, 403, "forbidden")
    assert_error(other_staff.get("/api/towns/sarabetsu/settlements"), 403, "forbidden")
    # A customer cannot register shops either.
    r = world.api(world.customer).post(
        "/api/towns/sarabetsu/merchants", {"name_ja": "店", "name_en": "Shop"}
    )
    assert_error(r, 403, "forbidden")
    assert snapshot(app) == before


def test_expired_or_other_charges_cannot_be_paid(app, world):
    set_balance(app, world, world.customer, 1000)
    set_balance(app, world, world.neighbour, 1000)
    clerk = world.api(world.clerk)
    customer, neighbour = world.api(world.customer), world.api(world.neighbour)
    old = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": 10, "idempotency_key": "old-1-x"}
    ).get_json()["charge"]
    taken = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": 10, "idempotency_key": "tkn-1-x"}
    ).get_json()["charge"]
    assert neighbour.post(f"/api/pay/{taken['code']}").status_code == 200
    with app.app_context():
        c = get_db().session.get(Charge, old["id"])
        c.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        get_db().session.commit()
    before = snapshot(app)
    assert_error(customer.post(f"/api/pay/{old['code']}"), 409, "charge_expired")
    assert_error(customer.post(f"/api/pay/{taken['code']}"), 409, "charge_not_payable")
    assert_error(customer.post("/api/pay/NOSUCHCODE"), 404, "charge_not_found")
    assert_error(customer.post("/api/pay/..%2F"), 404)
    after = snapshot(app)
    assert after["outbox"] == before["outbox"] and after["audit"] == before["audit"]


def test_not_enough_points_and_inactive_shop_change_nothing(app, world):
    set_balance(app, world, world.customer, 50)
    clerk, customer = world.api(world.clerk), world.api(world.customer)
    c = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": 60, "idempotency_key": "big-1-x"}
    ).get_json()["charge"]
    before = snapshot(app)
    err = assert_error(customer.post(f"/api/pay/{c['code']}"), 409, "insufficient_points")
    assert "50" in err["message"] and "60" in err["message"]
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem", {"amount": 1, "idempotency_key": "red-1-x"}
    )
    assert_error(r, 409, "insufficient_points")
    assert snapshot(app) == before
    with app.app_context():
        get_db().session.get(Merchant, world.merchant_id).status = "registering"
        get_db().session.commit()
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": 5, "idempotency_key": "ina-1-x"}
    )
    assert_error(r, 409, "merchant_not_active")


def test_signed_out_requests_are_refused(app, world):
    from tests.merchants.conftest import Api

    anon = Api(app)
    before = snapshot(app)
    m = world.merchant_id
    for url, body in [
        (f"/api/merchants/{m}/charges", {"amount": 5, "idempotency_key": "anon-1-x"}),
        (f"/api/merchants/{m}/redeem", {"amount": 5, "idempotency_key": "anon-2-x"}),
        ("/api/pay/ABCDEFGH", None),
        ("/api/settlements/1/settle", {"bank_reference": "x"}),
        ("/api/towns/sarabetsu/merchants", {"name_ja": "a", "name_en": "b"}),
    ]:
        r = anon.post(url, body)
        assert r.status_code in (401, 404), (url, r.status_code)
        if r.status_code == 401:
            assert_error(r, 401, "authentication_required")
    assert_error(anon.get("/api/points"), 401)
    # A session whose user is gone (expired) is the same as none.
    clerk = world.api(world.clerk)
    clerk.post("/api/auth/logout")
    r = clerk.post(f"/api/merchants/{m}/charges", {"amount": 5, "idempotency_key": "anon-3-x"})
    assert_error(r, 401, "authentication_required")
    assert snapshot(app) == before


def test_customer_code_payment_is_audited_with_the_helper(app, world):
    set_balance(app, world, world.customer, 500)
    clerk = world.api(world.clerk)
    code = customer_code(world.api(world.customer))
    # The code lets the shop take the customer's points once: "P" and 12 random digits.
    assert len(code) == 13 and code[0] == "P" and code[1:].isdigit()
    before = snapshot(app)
    for guess in ("P99999-1234567890", f"P{(int(code[1:]) + 1) % 10**12:012d}", "C" + code):
        r = clerk.post(
            f"/api/merchants/{world.merchant_id}/charge-customer",
            {"amount": 120, "customer_code": guess, "idempotency_key": "cc-bad-1"},
        )
        assert_error(r, 400, "customer_code_invalid")
    assert snapshot(app) == before
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charge-customer",
        {"amount": 120, "customer_code": code, "idempotency_key": "cc-ok-1"},
    )
    assert r.status_code == 201 and r.get_json()["charge"]["status"] == "paying"
    with app.app_context():
        row = get_db().session.scalars(sa.select(AuditLog).order_by(AuditLog.id.desc())).first()
        assert row.action == "points.assisted_payment"
        assert row.details["helper_user_id"] == world.user(world.clerk).id
        assert int(row.amount) == 120


def test_printed_card_wrong_pin_locks_after_five_tries(app, world):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        staff = world.user(world.staff)
        card = world.service().issue_card(staff, world.town(), world.user(world.customer), "482916")
        code = card.card_code
    clerk = world.api(world.clerk)
    pad = start_card_charge(clerk, world.merchant_id, code, "pin-pad-1")
    assert pad.status_code == 202
    url = f"/api/pin-pad/{pad.get_json()['pin_pad_token']}"
    before = snapshot(app)
    for left in [4, 3, 2, 1]:
        err = assert_error(clerk.post(url, {"pin": "999999"}), 403, "wrong_pin")
        assert err["details"]["left"] == left
    assert_error(clerk.post(url, {"pin": "000000"}), 423, "card_locked")
    assert_error(clerk.post(url, {"pin": "482916"}), 423, "card_locked")
    after = snapshot(app)
    assert after["outbox"] == before["outbox"] and after["audit"] == before["audit"]
    assert after["charges"] == before["charges"] and after["balances"] == before["balances"]


def test_printed_card_with_the_right_pin_pays(app, world):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), "246813"
        )
        code = card.card_code
    r = pay_by_card(world.api(world.clerk), world.merchant_id, code, "246813", "card-ok-1", 40)
    assert r.status_code == 200 and r.get_json()["charge"]["method"] == "card"
    assert r.get_json()["charge"]["status"] == "paying"
    assert _audit_actions(app)[-1] == "points.assisted_payment"


def test_settle_needs_a_bank_reference_and_staff_of_the_town(app, world):
    staff = world.api(world.staff)
    before = snapshot(app)
    assert_error(staff.post("/api/settlements/999/settle", {"bank_reference": "x"}), 404)
    assert_error(staff.post("/api/settlements/999/settle", "not an object"), 400)
    assert snapshot(app) == before


def test_the_indexer_names_the_charge_behind_a_payment(app, world, w3):
    """A payment's Transfer reaches the handlers with its subject, ("charge", id), read from the
    outbox row that sent it; the welcome grant's with ("points_grant", id); the merchants handler
    marks the charge paid from it."""
    from backend.chain.indexer import EventSubject, register_handler, unregister_handler

    seen = []
    handler = register_handler(
        "Transfer", lambda _s, evs: seen.extend(evs), lambda _s, evs: None, contract="RegionPoints"
    )
    try:
        with app.app_context():
            points_service().grant_welcome_points(world.user(world.customer), world.town())
        run_chain(app, w3)
        clerk, customer = world.api(world.clerk), world.api(world.customer)
        r = clerk.post(
            f"/api/merchants/{world.merchant_id}/charges",
            {"amount": 30, "idempotency_key": "k-subject-abc"},
        )
        assert r.status_code == 201, r.get_data(as_text=True)
        charge = r.get_json()["charge"]
        assert customer.post(f"/api/pay/{charge['code']}").status_code == 200
        run_chain(app, w3)
    finally:
        unregister_handler(handler)
    kinds = [ev.subject.kind if ev.subject else None for ev in seen]
    assert kinds == ["points_grant", "charge"], kinds
    assert seen[1].subject == EventSubject("charge", charge["id"])
    status = clerk.get(f"/api/merchants/{world.merchant_id}/charges/{charge['id']}").get_json()
    assert status["charge"]["status"] == "paid"
