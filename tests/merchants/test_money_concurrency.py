"""Issue 11's concurrent attacks on the money paths, replayed with threads on PostgreSQL AND
SQLite (where `with_for_update()` does nothing, so only conditional UPDATEs hold):

- one customer code sent with 3 charges at once pays once;
- 39 concurrent wrong PINs from 4 sessions of one shop get at most MAX_PIN_TRIES - 1 "wrong PIN"
  answers, and lock the card at that shop only;
- 10 concurrent "settle" calls with different bank references: one success, one audit row;
- two concurrent redemptions that together exceed the shop's balance: the second is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.indexer_models import TokenBalance
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.cards import MAX_PIN_TRIES
from backend.merchants.models import (
    ACTIVE,
    APPROVED,
    CardPinFailures,
    Charge,
    Merchant,
    ResidentCard,
    Settlement,
)
from tests.concurrency import at_once, twin_first
from tests.factories import SettlementFactory
from tests.merchants.conftest import (
    assert_error,
    customer_code,
    pay_by_card,
    set_balance,
    start_card_charge,
)


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    # The database's guards must hold by themselves, as for a guesser spread over many
    # addresses and sessions: the rate limits (tests/accounts/test_limits.py) are off here.
    app.extensions["limiter"].enabled = False
    return app


def _count(app: Flask, query: Any) -> int:
    with app.app_context():
        return int(get_db().session.scalar(query))


def test_one_customer_code_pays_once_whatever_the_request_keys(app, world):
    set_balance(app, world, world.customer, 500)
    customer = world.api(world.customer)
    code = customer_code(customer)
    clerks = [world.api(world.clerk) for _ in range(3)]
    url = f"/api/merchants/{world.merchant_id}/charge-customer"
    answers = at_once(
        [
            (
                lambda c=c, i=i: c.post(
                    url, {"amount": 100, "customer_code": code, "idempotency_key": f"one-code-{i}"}
                )
            )
            for i, c in enumerate(clerks)
        ]
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409], [r.get_data(as_text=True) for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert_error(r, 409, "customer_code_used")
    assert _count(app, sa.select(sa.func.count()).select_from(Charge)) == 1
    mine = customer.get("/api/me/charges").get_json()["charges"]
    assert [(c["amount"], c["method"], c["status"]) for c in mine] == [
        (100, "customer_code", "paying")
    ]
    # The used code stays used, for another amount and another key too.
    again = clerks[0].post(
        url, {"amount": 1, "customer_code": code, "idempotency_key": "one-code-4"}
    )
    assert_error(again, 409, "customer_code_used")


def _second_shop(app: Flask, world: Any) -> int:
    """Another shop of the same town, with the clerk of the other town's shop as its staff."""
    with app.app_context():
        s = get_db().session
        svc = world.service()
        shop = svc.register_merchant(world.user(world.staff), world.town(), "二号店", "Shop Two")
        svc.add_staff(world.user(world.staff), shop, world.user(world.neighbour))
        shop.status = ACTIVE
        s.commit()
        return int(shop.id)


def test_concurrent_wrong_pins_lock_the_card_at_that_shop_only(app, world):
    set_balance(app, world, world.customer, 500)
    with app.app_context():
        card = world.service().issue_card(
            world.user(world.staff), world.town(), world.user(world.customer), "482916"
        )
        code, card_id = card.card_code, card.id
    shop_two = _second_shop(app, world)
    sessions = [world.api(world.clerk) for _ in range(4)]
    pads = []
    for i, api in enumerate(sessions):
        r = start_card_charge(api, world.merchant_id, code, f"guess-pad-{i}")
        assert r.status_code == 202, r.get_data(as_text=True)
        pads.append(f"/api/pin-pad/{r.get_json()['pin_pad_token']}")
    calls = [
        (lambda api=sessions[i % 4], url=pads[i % 4], i=i: api.post(url, {"pin": f"{i:06d}"}))
        for i in range(39)
    ]
    # 8 threads, each checking a wrong PIN (a scrypt); the gate still releases them together.
    answers = at_once(calls, workers=8)
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {403, 423}, [r.get_data(as_text=True) for r in answers]
    assert statuses.count(403) <= MAX_PIN_TRIES - 1
    assert statuses.count(403) + statuses.count(423) == 39
    with app.app_context():
        row = get_db().session.scalar(
            sa.select(CardPinFailures).where(CardPinFailures.card_id == card_id)
        )
        assert row.merchant_id == world.merchant_id and row.failures == MAX_PIN_TRIES
        assert row.locked_at is not None
    # Locked here, even with the right PIN...
    assert_error(sessions[0].post(pads[0], {"pin": "482916"}), 423, "card_locked")
    # ...but one shop cannot lock the card everywhere: the town's other shop still takes it.
    r = pay_by_card(world.api(world.neighbour), shop_two, code, "482916", "shop-two-1")
    assert r.status_code == 200, r.get_data(as_text=True)

    # Town staff unlock it, with an audit row; then the first shop takes it again.
    audits = (
        sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "card.unlock")
    )
    assert_error(world.api(world.clerk).post(f"/api/cards/{card_id}/unlock"), 403)
    assert _count(app, audits) == 0
    r = world.api(world.staff).post(f"/api/cards/{card_id}/unlock")
    assert r.status_code == 200
    assert _count(app, audits) == 1
    r = pay_by_card(sessions[1], world.merchant_id, code, "482916", "after-unlock-1")
    assert r.status_code == 200, r.get_data(as_text=True)


def _approved_settlement(app: Flask, world: Any, amount: int = 300) -> int:
    with app.app_context():
        row = SettlementFactory(
            town_id=world.town_id,
            merchant_id=world.merchant_id,
            amount=Decimal(amount),
            status=APPROVED,
            requested_by=world.user(world.clerk).id,
            approved_by=world.user(world.staff).id,
        )
        get_db().session.commit()
        return int(row.id)


def test_ten_concurrent_settles_one_success_one_audit_row(app, world):
    sid = _approved_settlement(app, world)
    with app.app_context():  # a second member of staff, so two people race as well
        grant_town_role(world.user(world.neighbour), world.town_id, STAFF)
        get_db().session.commit()
    staff = [world.api(world.staff if i % 2 else world.neighbour) for i in range(10)]
    answers = at_once(
        [
            (
                lambda api=api, i=i: api.post(
                    f"/api/settlements/{sid}/settle", {"bank_reference": f"BANK-{i}"}
                )
            )
            for i, api in enumerate(staff)
        ]
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 9, [r.get_data(as_text=True) for r in answers]
    winner = next(r for r in answers if r.status_code == 200).get_json()["settlement"]
    rows = (
        sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "settlement.pay")
    )
    assert _count(app, rows) == 1
    with app.app_context():
        audit = get_db().session.scalar(
            sa.select(AuditLog).where(AuditLog.action == "settlement.pay")
        )
        s = get_db().session.get(Settlement, sid)
        assert s.status == "settled" and s.bank_reference == winner["bank_reference"]
        assert audit.details["bank_reference"] == s.bank_reference


def test_two_redemptions_exceeding_the_balance_are_not_both_accepted(app, world):
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
    clerks = [world.api(world.clerk) for _ in range(2)]
    url = f"/api/merchants/{world.merchant_id}/redeem"
    answers = at_once(
        [
            (lambda api=api, i=i: api.post(url, {"amount": 300, "idempotency_key": f"rd-{i}-xx"}))
            for i, api in enumerate(clerks)
        ]
    )
    assert sorted(r.status_code for r in answers) == [201, 409], [
        r.get_data(as_text=True) for r in answers
    ]
    assert_error(next(r for r in answers if r.status_code == 409), 409, "insufficient_points")
    assert _count(app, sa.select(sa.func.count()).select_from(Settlement)) == 1


def test_a_double_submit_whose_twin_used_the_code_first_gets_the_twins_charge(
    app, world, monkeypatch
):
    """The shop's "charge" sent twice with one request key: the second request finds no charge
    with its key; then the first commits and uses the single-use code; then the second tries the
    code. It gets the first charge (the same answer), not "this code was already used"."""
    from backend.merchants import charges as charges_module
    from backend.merchants.services import merchant_service

    set_balance(app, world, world.customer, 500)
    code = customer_code(world.api(world.customer))
    clerk = world.api(world.clerk)
    url = f"/api/merchants/{world.merchant_id}/charge-customer"
    body = {"amount": 100, "customer_code": code, "idempotency_key": "double-submit-1"}
    with app.app_context():
        clerk_id = world.user(world.clerk).id

    def twin_charge() -> int:
        s = get_db().session
        charge, _ = merchant_service().charge_customer(
            s.get(User, clerk_id), world.merchant_id, 100, code, body["idempotency_key"]
        )
        return int(charge.id)

    twin = twin_first(monkeypatch, charges_module, "charge_by_customer_code", app, twin_charge)
    second = clerk.post(url, body)
    assert second.status_code in (200, 201), second.get_data(as_text=True)
    assert second.get_json()["charge"]["id"] == twin[0]
    assert _count(app, sa.select(sa.func.count()).select_from(Charge)) == 1
    # Another key with the used code is still refused and changes nothing.
    again = clerk.post(url, {**body, "idempotency_key": "double-submit-2"})
    assert_error(again, 409, "customer_code_used")
    assert _count(app, sa.select(sa.func.count()).select_from(Charge)) == 1


def test_a_double_submit_of_a_redemption_whose_twin_spent_the_balance_gets_the_twins_answer(
    app, world, monkeypatch
):
    """The shop redeems all it has and the confirmation is sent twice with one request key: the
    second request finds no settlement with its key, then waits for the shop's lock while the
    first commits and spends the balance. It gets the first settlement (the same answer), not
    "not enough points" for a redemption that went through."""
    from backend.merchants import settlement_state
    from backend.merchants.services import merchant_service

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
        clerk_id = world.user(world.clerk).id
    body = {"amount": 500, "idempotency_key": "redeem-all-1"}

    def twin_redeem() -> int:
        settlement = merchant_service().redeem(
            get_db().session.get(User, clerk_id), world.merchant_id, 500, body["idempotency_key"]
        )
        return int(settlement.id)

    twin = twin_first(monkeypatch, settlement_state, "lock_merchant", app, twin_redeem)
    second = world.api(world.clerk).post(f"/api/merchants/{world.merchant_id}/redeem", body)
    assert second.status_code in (200, 201), second.get_data(as_text=True)
    assert second.get_json()["settlement"]["id"] == twin[0]
    assert _count(app, sa.select(sa.func.count()).select_from(Settlement)) == 1
    burns = sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == "points.burn")
    assert _count(app, burns) == 1


def test_raises_of_the_four_eyes_amount_at_once_never_apply_on_one_persons_word(app, world):
    """Ten requests at once from one member of staff leave the raise waiting (one proposal);
    then the same raise from two members of staff at once applies it, naming both."""
    with app.app_context():
        grant_town_role(world.user(world.neighbour), world.town_id, STAFF)
        get_db().session.commit()
        first_id, second_id = world.user(world.staff).id, world.user(world.neighbour).id
    url = "/api/towns/sarabetsu/money-settings"
    raise_ = {"four_eyes_amount": 700_000}
    firsts = [world.api(world.staff) for _ in range(10)]
    answers = at_once([lambda api=api: api.post(url, raise_) for api in firsts])
    assert [r.status_code for r in answers] == [202] * 10, [r.get_data() for r in answers]
    settings = firsts[0].get(url).get_json()
    assert settings["settings"]["four_eyes_amount"] == 100_000
    assert settings["pending"] == {"four_eyes_amount": {"amount": 700_000, "proposed_by": first_id}}
    assert (
        _count(
            app,
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "town.money_settings.raise_proposed"),
        )
        == 1
    )

    seconds = [world.api(world.neighbour) for _ in range(5)]
    answers = at_once([lambda api=api: api.post(url, raise_) for api in seconds + firsts[:5]])
    assert {r.status_code for r in answers} <= {200, 202}
    settings = firsts[0].get(url).get_json()
    assert settings["settings"]["four_eyes_amount"] == 700_000 and settings["pending"] == {}
    with app.app_context():
        applied = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "town.money_settings"))
            .all()
        )
    assert len(applied) == 1
    assert {applied[0].actor, *map(str, applied[0].details["raise_proposed_by"].values())} in (
        {f"user:{second_id}", str(first_id)},
        {f"user:{first_id}", str(second_id)},
    )


def test_cards_issued_at_once_for_one_resident_make_one_card_and_one_notice(app, world):
    """Two desks (ten presses) issue the same resident's card at the same moment: one card, one
    PIN shown, one notice to the holder; the others are told the card exists (409)."""
    from backend.merchants.errors import CardExists
    from backend.notifications.models import Notification
    from tests.concurrency import in_app

    def issue() -> Any:
        svc = world.service()
        staff = get_db().session.get(User, world.user(world.staff).id)
        town = world.town()
        return svc.issue_card_by_email(staff, town, world.customer)

    with app.app_context():
        world.user(world.staff)  # warm the fixture's look-ups outside the threads
    answers = at_once([in_app(app, issue) for _ in range(10)])
    issued = [a for a in answers if not isinstance(a, Exception)]
    refused = [a for a in answers if isinstance(a, Exception)]
    assert len(issued) == 1, answers
    assert refused and all(isinstance(e, CardExists) for e in refused), refused
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(ResidentCard)) == 1
        notices = s.scalars(sa.select(Notification).where(Notification.kind == "card_issued"))
        assert [n.user_id for n in notices] == [world.user(world.customer).id]
