"""Issue 11 §1-§3 guards, one finding per test: a refused request answers a clear 4xx and
changes nothing. Customer codes (expiry, daily limit, no PIN through the shop), printed cards
(6-digit PINs, daily limit per card), four eyes, a reverted burn, bank accounts seen by town
staff only, and the 全銀協 transfer file's layout."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.indexer_models import TokenBalance
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.bank_transfer import RECORD, to_zengin_kana
from backend.merchants.models import (
    REQUESTED,
    CustomerCode,
    Merchant,
    Settlement,
)
from tests.merchants.conftest import (
    assert_error,
    customer_code,
    pay_by_card,
    run_chain,
    set_balance,
    snapshot,
    start_card_charge,
)

BANK = {
    "bank_code": "0001",
    "bank_name": "ﾐｽﾞﾎ",
    "branch_code": "100",
    "branch_name": "おびひろ",  # hiragana: converted to half-width katakana
    "account_type": "1",
    "account_number": "1234567",
    "holder_name": "カ）サラベツノウサンブツチョクバイショ",
}
TOWN_BANK = {
    "originator_code": "0123456789",
    "originator_name": "サラベツムラ",
    "bank_code": "0005",
    "bank_name": "ﾐﾂﾋﾞｼUFJ",
    "branch_code": "200",
    "branch_name": "ｻﾗﾍﾞﾂ",
    "account_type": "1",
    "account_number": "7654321",
}


def _audits(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(
            get_db().session.scalars(
                sa.select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            )
        )


def _charge(api, world, code: str, amount: int, key: str):
    return api.post(
        f"/api/merchants/{world.merchant_id}/charge-customer",
        {"amount": amount, "customer_code": code, "idempotency_key": key},
    )


# ------------------------------------------------------------------ §1 customer codes


def test_customer_code_needs_a_sign_in_and_is_stored_hashed(app, world):
    from tests.merchants.conftest import Api

    assert_error(Api(app).post("/api/me/customer-codes"), 401)
    code = customer_code(world.api(world.customer))
    with app.app_context():
        rows = get_db().session.scalars(sa.select(CustomerCode)).all()
        assert (
            len(rows) == 1
            and code not in rows[0].code_hash
            and code[1:] not in str(rows[0].code_hash)
        )


def test_an_expired_code_is_refused_and_changes_nothing(app, world):
    set_balance(app, world, world.customer, 500)
    code = customer_code(world.api(world.customer))
    with app.app_context():
        s = get_db().session
        row = s.scalars(sa.select(CustomerCode)).one()
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        s.commit()
    before = snapshot(app)
    assert_error(
        _charge(world.api(world.clerk), world, code, 10, "expired-1"), 400, "customer_code_invalid"
    )
    assert snapshot(app) == before


def test_the_towns_daily_limit_per_customer(app, world):
    set_balance(app, world, world.customer, 5000)
    staff, clerk, customer = (world.api(e) for e in (world.staff, world.clerk, world.customer))
    # Only town staff set it; bad values change nothing.
    url = "/api/towns/sarabetsu/money-settings"
    assert_error(clerk.post(url, {"customer_daily_limit": 100}), 403)
    for bad in (0, -1, "100", 1.5, True, 10**10):
        assert_error(staff.post(url, {"customer_daily_limit": bad}), 400, "invalid_input")
    assert staff.get(url).get_json()["settings"]["customer_daily_limit"] == 30000
    r = staff.post(url, {"customer_daily_limit": 150})
    assert r.status_code == 200 and r.get_json()["settings"]["customer_daily_limit"] == 150
    assert len(_audits(app, "town.money_settings")) == 1

    assert _charge(clerk, world, customer_code(customer), 100, "limit-ok-1").status_code == 201
    code = customer_code(customer)
    before = snapshot(app)
    err = assert_error(_charge(clerk, world, code, 60, "limit-over-1"), 409, "daily_limit_reached")
    assert err["details"]["left"] == 50
    assert snapshot(app) == before
    # The refused charge did not use the code up: it still pays what fits.
    assert _charge(clerk, world, code, 50, "limit-fits-1").status_code == 201


def test_a_request_key_of_one_customers_charge_does_not_answer_for_another(app, world):
    """A till that sends a charge again with the request key of one already taken (a stale form
    after the back button, a POS retrying with its last key) but ANOTHER customer's code or card
    is refused: it must not answer the first customer's charge as if this customer had paid.
    Nothing changes, and the second customer's code still pays under a key of its own."""
    set_balance(app, world, world.customer, 500)
    set_balance(app, world, world.neighbour, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.neighbour), "246801"
        )
        card_code = card.card_code
    clerk = world.api(world.clerk)
    first_code = customer_code(world.api(world.customer))
    first = _charge(clerk, world, first_code, 100, "till-key-1")
    assert first.status_code == 201, first.get_data(as_text=True)
    first_id = first.get_json()["charge"]["id"]
    neighbour_code = customer_code(world.api(world.neighbour))

    before = snapshot(app)
    reused = _charge(clerk, world, neighbour_code, 100, "till-key-1")
    assert_error(reused, 409, "idempotency_key_reused")
    assert_error(_charge(clerk, world, card_code, 100, "till-key-1"), 409, "idempotency_key_reused")
    assert snapshot(app) == before
    # The same request again (the first customer's code) is still the first charge.
    again = _charge(clerk, world, first_code, 100, "till-key-1")
    assert again.status_code in (200, 201) and again.get_json()["charge"]["id"] == first_id
    # A card charge's key does not answer for a customer's code either.
    pad = start_card_charge(clerk, world.merchant_id, card_code, "till-key-2", 100)
    assert pad.status_code == 202, pad.get_data(as_text=True)
    assert_error(
        _charge(clerk, world, neighbour_code, 100, "till-key-2"), 409, "idempotency_key_reused"
    )
    # The neighbour's code was not used up by the refusals: it pays under its own key.
    paid = _charge(clerk, world, neighbour_code, 100, "till-key-3")
    assert paid.status_code == 201, paid.get_data(as_text=True)
    mine = world.api(world.neighbour).get("/api/me/charges").get_json()["charges"]
    assert [(c["id"], c["method"]) for c in mine][0] == (
        paid.get_json()["charge"]["id"],
        "customer_code",
    )


def test_the_shop_never_sends_a_pin_and_card_charges_are_not_payable_by_link(app, world):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), "135792"
        )
        code = card.card_code
    clerk = world.api(world.clerk)
    before = snapshot(app)
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charge-customer",
        {"amount": 10, "customer_code": code, "pin": "135792", "idempotency_key": "pin-in-1"},
    )
    assert_error(r, 400, "pin_not_accepted")
    assert snapshot(app) == before
    pad = start_card_charge(clerk, world.merchant_id, code, "pad-link-1").get_json()
    # The pending card charge is paid only by its PIN pad: not by its pay link, by anyone.
    charge_code = pad["charge"]["code"]
    assert_error(
        world.api(world.customer).post(f"/api/pay/{charge_code}"), 409, "charge_not_payable"
    )
    # Nor from another shop's session.
    assert_error(
        world.api(world.other_clerk).post(
            f"/api/pin-pad/{pad['pin_pad_token']}", {"pin": "135792"}
        ),
        403,
    )
    assert_error(
        clerk.post("/api/pin-pad/not-a-real-token-at-all", {"pin": "135792"}),
        404,
        "pin_pad_not_found",
    )
    ok = clerk.post(f"/api/pin-pad/{pad['pin_pad_token']}", {"pin": "135792"})
    assert ok.status_code == 200
    again = clerk.post(f"/api/pin-pad/{pad['pin_pad_token']}", {"pin": "135792"})
    assert_error(again, 409, "pin_pad_done")
    mine = world.api(world.customer).get("/api/me/charges").get_json()["charges"]
    assert [(c["method"], c["status"]) for c in mine] == [("card", "paying")]


# ------------------------------------------------------------------ §2 printed cards


@pytest.mark.parametrize("pin", ["1234", "12345", "1234567", "12a456", "", None])
def test_cards_need_six_digit_pins(app, world, pin):
    from backend.core.errors import InvalidInput

    with app.app_context(), pytest.raises(InvalidInput):
        world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), pin
        )


def test_the_towns_daily_limit_per_card(app, world):
    set_balance(app, world, world.customer, 5000)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), "864209"
        )
        code = card.card_code
    staff, clerk = world.api(world.staff), world.api(world.clerk)
    assert staff.post("/api/towns/sarabetsu/money-settings", {"card_daily_limit": 100}).status_code
    assert (
        pay_by_card(clerk, world.merchant_id, code, "864209", "card-limit-1", 80).status_code == 200
    )
    before = snapshot(app)
    r = pay_by_card(clerk, world.merchant_id, code, "864209", "card-limit-2", 30)
    assert_error(r, 409, "daily_limit_reached")
    after = snapshot(app)
    assert after["outbox"] == before["outbox"] and after["audit"] == before["audit"]
    assert (
        pay_by_card(clerk, world.merchant_id, code, "864209", "card-limit-3", 20).status_code == 200
    )


def test_pin_pad_guessing_is_rate_limited_per_shop_session(app, world):
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), "975310"
        )
        code = card.card_code
    clerk = world.api(world.clerk)
    pad = start_card_charge(clerk, world.merchant_id, code, "pad-rate-1").get_json()
    url = f"/api/pin-pad/{pad['pin_pad_token']}"
    answers = [clerk.post(url, {"pin": f"{i:06d}"}).status_code for i in range(11)]
    assert answers == [403] * 4 + [423] * 6 + [429]


# ------------------------------------------------------------------ §3 settlements


def _requested(app, world, amount: int, key: str) -> int:
    with app.app_context():
        s = get_db().session
        row = Settlement(
            town_id=world.town_id,
            merchant_id=world.merchant_id,
            amount=Decimal(amount),
            ref="0x" + key.encode().hex().ljust(64, "0")[:64],
            status=REQUESTED,
            idempotency_key=key,
            requested_by=world.user(world.clerk).id,
        )
        s.add(row)
        s.commit()
        return int(row.id)


def test_one_member_of_staff_cannot_raise_a_four_eyes_amount_and_approve_alone(app, world):
    """The attack: raise the four-eyes amount, then approve a large settlement alone. A raise
    waits until another member of staff sets the same amount; lowering applies at once."""
    with app.app_context():
        grant_town_role(world.user(world.neighbour), world.town_id, STAFF)
        get_db().session.commit()
        first_id, second_id = world.user(world.staff).id, world.user(world.neighbour).id
    first, second = world.api(world.staff), world.api(world.neighbour)
    url = "/api/towns/sarabetsu/money-settings"
    big = _requested(app, world, 200_000, "raise-big-1")

    # One member of staff raises it (with a daily limit in the same request): the daily limit
    # applies, the four-eyes amount waits, and asking again changes nothing.
    for _ in range(2):
        r = first.post(url, {"four_eyes_amount": 500_000, "customer_daily_limit": 40_000})
        assert r.status_code == 202, r.get_data(as_text=True)
        body = r.get_json()
        assert body["settings"]["four_eyes_amount"] == 100_000
        assert body["settings"]["customer_daily_limit"] == 40_000
        assert body["pending"] == {"four_eyes_amount": {"amount": 500_000, "proposed_by": first_id}}
    assert len(_audits(app, "town.money_settings.raise_proposed")) == 1
    assert first.get(url).get_json()["pending"]["four_eyes_amount"]["amount"] == 500_000
    # The large settlement still needs a second approver.
    r = first.post(f"/api/settlements/{big}/approve")
    assert r.get_json()["settlement"]["status"] == "requested"
    assert_error(first.post(f"/api/settlements/{big}/approve"), 409, "second_approver_needed")

    # Another member of staff setting the same amount confirms it; both are in the audit row.
    r = second.post(url, {"four_eyes_amount": 500_000})
    assert r.status_code == 200
    assert r.get_json()["settings"]["four_eyes_amount"] == 500_000 and r.get_json()["pending"] == {}
    confirmed = _audits(app, "town.money_settings")[-1]
    assert confirmed.actor == f"user:{second_id}"
    assert confirmed.details["raise_proposed_by"] == {"four_eyes_amount": first_id}

    # Lowering takes one person; the points-issuing amount follows the same rule.
    r = first.post(url, {"four_eyes_amount": 1_000})
    assert r.status_code == 200 and r.get_json()["settings"]["four_eyes_amount"] == 1_000
    r = first.post(url, {"issue_four_eyes_amount": 10**9})
    assert r.status_code == 202
    assert r.get_json()["settings"]["issue_four_eyes_amount"] == 100_000
    # Bad values are refused and leave the waiting raise as it was.
    before = first.get(url).get_json()
    assert_error(first.post(url, {"issue_four_eyes_amount": 10**9 + 1}), 400, "invalid_input")
    assert first.get(url).get_json() == before


def test_four_eyes_above_the_towns_amount(app, world):
    with app.app_context():
        grant_town_role(world.user(world.neighbour), world.town_id, STAFF)
        get_db().session.commit()
    first, second, clerk = (world.api(e) for e in (world.staff, world.neighbour, world.clerk))
    assert first.post("/api/towns/sarabetsu/money-settings", {"four_eyes_amount": 1000})
    small, big = _requested(app, world, 1000, "small-1"), _requested(app, world, 1001, "big-1")

    assert_error(clerk.post(f"/api/settlements/{big}/approve"), 403)
    r = first.post(f"/api/settlements/{small}/approve")  # at the amount: one approval
    assert r.get_json()["settlement"]["status"] == "approved"

    r = first.post(f"/api/settlements/{big}/approve")
    assert r.status_code == 200 and r.get_json()["settlement"]["status"] == "requested"
    before = snapshot(app)
    assert_error(first.post(f"/api/settlements/{big}/approve"), 409, "second_approver_needed")
    for who in (first, second):  # nobody marks it paid before the second approval
        r = who.post(f"/api/settlements/{big}/settle", {"bank_reference": "EARLY"})
        assert_error(r, 409, "settlement_not_ready")
    assert snapshot(app) == before
    r = second.post(f"/api/settlements/{big}/approve")
    assert r.get_json()["settlement"]["status"] == "approved"
    r = first.post(f"/api/settlements/{big}/settle", {"bank_reference": "BANK-BIG"})
    assert r.status_code == 200 and r.get_json()["settlement"]["status"] == "settled"
    steps = [a.details["step"] for a in _audits(app, "settlement.approve")]
    assert steps == ["approve", "first_approval", "second_approval"]
    with app.app_context():
        ids = {f"user:{world.user(e).id}" for e in (world.staff, world.neighbour)}
    assert {a.actor for a in _audits(app, "settlement.approve")[1:]} == ids


def test_a_reverted_burn_marks_the_settlement_failed_and_the_shop_keeps_its_points(app, world, w3):
    # The projection says 500 but the chain holds none: the burn reverts on chain.
    with app.app_context():
        s = get_db().session
        town = world.town()
        shop = s.get(Merchant, world.merchant_id)
        s.merge(
            TokenBalance(
                chain_id=town.chain_id,
                contract_address=town.points_address,
                holder=shop.address,
                amount=Decimal(500),
            )
        )
        s.commit()
    clerk, staff = world.api(world.clerk), world.api(world.staff)
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem",
        {"amount": 300, "idempotency_key": "burn-fails-1"},
    )
    assert r.status_code == 201
    sid = r.get_json()["settlement"]["id"]
    run_chain(app, w3)
    mine = clerk.get(f"/api/merchants/{world.merchant_id}/settlements").get_json()
    s = mine["settlements"][0]
    assert s["status"] == "failed" and s["failure_reason"], s
    assert clerk.get(f"/api/merchants/{world.merchant_id}").get_json()["available"] == 500
    fails = _audits(app, "settlement.fail")
    assert len(fails) == 1 and fails[0].subject_id == str(sid)
    assert_error(staff.post(f"/api/settlements/{sid}/approve"), 409, "settlement_not_ready")
    assert_error(staff.post(f"/api/settlements/{sid}/settle", {"bank_reference": "X"}), 409)
    desk = clerk.get(f"/merchants/{world.merchant_id}").get_data(as_text=True)
    assert 'data-testid="settlement-reason"' in desk


def test_bank_details_only_for_town_staff_and_the_zengin_file(app, world):
    clerk, staff, other = (world.api(e) for e in (world.clerk, world.staff, world.other_staff))
    url = f"/api/merchants/{world.merchant_id}/bank-account"
    before = snapshot(app)
    assert_error(clerk.get(url), 403)
    assert_error(clerk.post(url, BANK), 403)
    assert_error(other.get(url), 403)
    for field, bad in (
        ("bank_code", "12"),
        ("bank_code", "１２３４"),
        ("account_type", "3"),
        ("account_number", "12345678"),
        ("holder_name", "X" * 31),
        ("holder_name", "山田"),
    ):
        err = assert_error(staff.post(url, {**BANK, field: bad}), 400, "invalid_input")
        assert err["details"]["field"] == field
    assert snapshot(app) == before
    assert staff.get(url).get_json()["bank_account"] is None
    r = staff.post(url, BANK)
    assert r.status_code == 200
    assert r.get_json()["bank_account"]["branch_name"] == "ｵﾋﾞﾋﾛ"
    assert r.get_json()["bank_account"]["holder_name"] == "ｶ)ｻﾗﾍﾞﾂﾉｳｻﾝﾌﾞﾂﾁﾖｸﾊﾞｲｼﾖ"
    assert _audits(app, "merchant.bank_account")[0].details == {
        "bank_code": "0001",
        "account_tail": "567",
    }
    assert "1234567" not in clerk.get(f"/api/merchants/{world.merchant_id}").get_data(as_text=True)

    a, b = _requested(app, world, 12000, "zen-1"), _requested(app, world, 3456, "zen-2")
    file_url = "/api/towns/sarabetsu/settlements/transfer-file"
    body = {"transfer_date": "2026-12-07"}
    assert_error(staff.post(file_url, body), 409, "transfer_file_refused")  # none approved
    for sid in (a, b):
        staff.post(f"/api/settlements/{sid}/approve")
    assert_error(staff.post(file_url, body), 409, "transfer_file_refused")  # no town account
    assert_error(staff.post(file_url, {"transfer_date": "7 Dec"}), 400)
    assert_error(clerk.post(file_url, body), 403)
    assert staff.post("/api/towns/sarabetsu/bank-account", TOWN_BANK).status_code == 200
    r = staff.post(file_url, body)
    assert r.status_code == 200
    assert "zengin-sarabetsu-2026-12-07" in r.headers["Content-Disposition"]
    raw = r.get_data()
    assert raw.endswith(b"\r\n")
    records = raw.split(b"\r\n")[:-1]
    assert [len(rec) for rec in records] == [RECORD] * 5
    assert [rec[:1] for rec in records] == [b"1", b"2", b"2", b"8", b"9"]
    head = records[0]
    assert head[1:3] == b"21" and head[3:4] == b"0"
    assert head[4:14] == b"0123456789"
    assert head[14:54].decode("shift_jis").rstrip() == "ｻﾗﾍﾞﾂﾑﾗ"
    assert head[54:58] == b"1207"
    assert head[58:62] == b"0005" and head[62:77].decode("shift_jis").rstrip() == "ﾐﾂﾋﾞｼUFJ"
    assert head[77:80] == b"200" and head[95:96] == b"1" and head[96:103] == b"7654321"
    d = records[1]
    assert d[1:5] == b"0001" and d[5:20].decode("shift_jis").rstrip() == "ﾐｽﾞﾎ"
    assert d[20:23] == b"100" and d[23:38].decode("shift_jis").rstrip() == "ｵﾋﾞﾋﾛ"
    assert d[42:43] == b"1" and d[43:50] == b"1234567"
    assert d[50:80].decode("shift_jis").rstrip() == "ｶ)ｻﾗﾍﾞﾂﾉｳｻﾝﾌﾞﾂﾁﾖｸﾊﾞｲｼﾖ"
    assert d[80:90] == b"0000012000" and d[91:101].rstrip() == str(a).encode()
    assert records[2][80:90] == b"0000003456"
    trailer = records[3]
    assert trailer[1:7] == b"000002" and trailer[7:19] == b"000000015456"
    assert records[4] == b"9" + b" " * 119
    # Half-width katakana are one byte each in Shift_JIS (0xA1-0xDF).
    assert all(0xA1 <= c <= 0xDF for c in "ｻﾗﾍﾞﾂﾑﾗ".encode("shift_jis"))
    actions = _audits(app, "settlement.transfer_file")
    assert len(actions) == 1 and actions[0].details["settlement_ids"] == [a, b]
    assert int(actions[0].amount) == 15456


def test_a_transfer_file_for_ids_no_settlement_can_have_is_refused_not_a_500(app, world):
    """Settlement ids past what the database can hold (2^31 and more, 0, negative) name no
    settlement: the file is refused with the ids named (409), as for an unknown id, not a 500."""
    staff = world.api(world.staff)
    sid = _requested(app, world, 1200, "zen-big-1")
    staff.post(f"/api/settlements/{sid}/approve")
    assert staff.post("/api/towns/sarabetsu/bank-account", TOWN_BANK).status_code == 200
    assert staff.post(f"/api/merchants/{world.merchant_id}/bank-account", BANK).status_code == 200
    file_url = "/api/towns/sarabetsu/settlements/transfer-file"
    before = snapshot(app)
    for bad in (2**31, 2**63, 10**30, 0, -1):
        r = staff.post(file_url, {"settlement_ids": [sid, bad], "transfer_date": "2026-12-07"})
        err = assert_error(r, 409, "transfer_file_refused")
        assert str(bad) in err["message"]
    assert snapshot(app) == before
    assert _audits(app, "settlement.transfer_file") == []
    ok = staff.post(file_url, {"settlement_ids": [sid], "transfer_date": "2026-12-07"})
    assert ok.status_code == 200


def test_zengin_kana_conversion():
    assert to_zengin_kana("サラベツ　ノウサンブツ") == "ｻﾗﾍﾞﾂ ﾉｳｻﾝﾌﾞﾂ"
    assert to_zengin_kana("ちょくばいしょ") == "ﾁﾖｸﾊﾞｲｼﾖ"  # small kana become large
    assert to_zengin_kana("パーク（カ") == "ﾊﾟ-ｸ(ｶ"
    assert to_zengin_kana("ｆｕｒｕ１２") == "FURU12"


def test_the_demo_card_made_with_a_four_digit_pin_is_reissued_with_six(app, world):
    from werkzeug.security import check_password_hash, generate_password_hash

    from backend.merchants.demo import CARD_CODE, CARD_PIN, load_demo
    from backend.merchants.models import ResidentCard
    from backend.points.demo import RESIDENT_EMAIL, RESIDENT_PASSWORD, demo_user

    assert len(CARD_PIN) == 6 and CARD_PIN.isdigit()
    with app.app_context():
        s = get_db().session
        resident = demo_user(RESIDENT_EMAIL, RESIDENT_PASSWORD, "更別 花子")
        s.add(  # as a demo database made before migration 0019 holds it
            ResidentCard(
                user_id=resident.id,
                town_id=world.town_id,
                card_code=CARD_CODE,
                pin_hash=generate_password_hash("1234"),
            )
        )
        s.commit()
        load_demo(world.town())
        card = s.scalar(sa.select(ResidentCard).where(ResidentCard.user_id == resident.id))
        assert card.card_code == CARD_CODE and check_password_hash(card.pin_hash, CARD_PIN)
        assert not check_password_hash(card.pin_hash, "1234")


def test_the_demo_card_code_is_a_card_code_and_an_old_demo_card_gets_it(app, world):
    """The demo cards' codes have the form every form accepts (C and 10 characters): before,
    "CSARABETSU01" was refused at event check-in and in issuing. A demo database holding the
    old code gets the new one when the demo is loaded again."""
    from werkzeug.security import generate_password_hash

    from backend.events.checkin import CARD_RE
    from backend.merchants.demo import CARD_CODE, CARD_PIN, TOWNS, load_demo
    from backend.merchants.models import ResidentCard
    from backend.points.demo import RESIDENT_EMAIL, RESIDENT_PASSWORD, demo_user

    assert all(CARD_RE.fullmatch(t.card_code) for t in TOWNS.values())
    with app.app_context():
        s = get_db().session
        resident = demo_user(RESIDENT_EMAIL, RESIDENT_PASSWORD, "更別 花子")
        s.add(
            ResidentCard(
                user_id=resident.id,
                town_id=world.town_id,
                card_code="CSARABETSU01",
                pin_hash=generate_password_hash(CARD_PIN),
            )
        )
        s.commit()
        load_demo(world.town())
        card = s.scalar(sa.select(ResidentCard).where(ResidentCard.user_id == resident.id))
        assert card.card_code == CARD_CODE


def test_town_staff_unlock_a_card_on_the_cards_page(app, world):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), "314159"
        )
        code, card_id = card.card_code, card.id
    clerk, staff = world.api(world.clerk), world.api(world.staff)
    pad = start_card_charge(clerk, world.merchant_id, code, "unlock-page-1").get_json()
    for _ in range(5):
        clerk.post(f"/api/pin-pad/{pad['pin_pad_token']}", {"pin": "000000"})

    def form(api, data):
        token = api.client.get("/api/csrf").get_json()["csrf_token"]
        return api.client.post("/towns/sarabetsu/cards/unlock", data={"csrf_token": token, **data})

    assert form(clerk, {"card_code": code}).status_code == 403
    assert _audits(app, "card.unlock") == []
    r = form(staff, {"card_code": "CNOSUCHCARD"})
    assert r.status_code == 302 and "error=" in r.headers["Location"]
    r = form(staff, {"card_code": code.lower()})
    assert r.status_code == 302 and r.headers["Location"].endswith("notice=unlocked")
    page = staff.get(r.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="card-unlocked"' in page
    (audit,) = _audits(app, "card.unlock")
    assert audit.subject_id == str(card_id)
    assert audit.details["cleared"] == {str(world.merchant_id): 5}
    ok = pay_by_card(clerk, world.merchant_id, code, "314159", "unlock-page-2")
    assert ok.status_code == 200
