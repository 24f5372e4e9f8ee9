"""A reorg deeper than the confirmations under a paid charge, a pending charge and a merchant
redemption (issue 10 §4): after the beat rounds every charge and settlement agrees with the
chain again, the projection's balances equal the chain's, no nonce gap remains and the next
charge is paid."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from eth_account import Account

from backend.chain.indexer_models import TokenBalance
from backend.chain.indexer_tasks import index_blocks
from backend.chain.outbox import outbox_service
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.merchants.models import Charge, Merchant, Settlement
from backend.points.services import points_service
from tests.chain._reorg_helpers import drive, no_automine, nonce_gap, revert, snapshot
from tests.merchants.conftest import run_chain


@pytest.fixture
def app(make_app, deployed, any_db_url):
    """Charges, redemptions and settlements follow the chain on PostgreSQL and on SQLite (the
    embedded default), where settlement state changes rely on conditional UPDATEs."""
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # the tests drive the outbox themselves
    return app


def _index(app) -> None:
    with app.app_context():
        index_blocks()
        get_db().session.remove()


def _statuses(app) -> tuple[dict[int, str], dict[int, str]]:
    with app.app_context():
        s = get_db().session
        charges = {c.id: c.status for c in s.scalars(sa.select(Charge))}
        settlements = {x.id: x.status for x in s.scalars(sa.select(Settlement))}
        s.commit()
        return charges, settlements


def _charge(world, clerk, customer, amount: int, key: str) -> int:
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": amount, "idempotency_key": key}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    charge = r.get_json()["charge"]
    paid = customer.post(f"/api/pay/{charge['code']}")
    assert paid.status_code == 200, paid.get_data(as_text=True)
    return int(charge["id"])


def _chain_balance(w3, app, address: str) -> int:
    with app.app_context():
        points = get_db().session.scalar(
            sa.text("select points_address from towns where slug = 'sarabetsu'")
        )
        get_db().session.commit()
    c = w3.eth.contract(address=points, abi=artifact("RegionPoints").abi)
    return int(c.functions.balanceOf(address).call())


def _projection_matches_chain(app, w3) -> bool:
    with app.app_context():
        s = get_db().session
        rows = [(b.holder, int(b.amount)) for b in s.scalars(sa.select(TokenBalance))]
        points = s.scalar(sa.text("select points_address from towns where slug = 'sarabetsu'"))
        s.commit()
    c = w3.eth.contract(address=points, abi=artifact("RegionPoints").abi)
    return all(c.functions.balanceOf(holder).call() == amount for holder, amount in rows)


@pytest.mark.parametrize("pad", [0, 4])
def test_charges_and_redemption_follow_the_chain_after_a_deep_reorg(app, world, w3, pad):
    with app.app_context():
        points_service().grant_welcome_points(world.user(world.customer), world.town())
    run_chain(app, w3)
    customer, clerk = world.api(world.customer), world.api(world.clerk)
    snap = snapshot(w3)
    start = w3.eth.block_number
    paid_id = _charge(world, clerk, customer, 300, "reorg-charge-1")
    run_chain(app, w3, rounds=1)
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem", {"amount": 100, "idempotency_key": "redeem-1"}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    settlement_id = r.get_json()["settlement"]["id"]
    run_chain(app, w3, rounds=1)
    if pad:
        w3.provider.make_request("anvil_mine", [hex(pad)])  # empty blocks on top of them
    charges, settlements = _statuses(app)
    assert charges[paid_id] == "paid" and settlements[settlement_id] == "requested"
    # A second charge paid but still in the pool when the chain is rewound.
    with no_automine(w3):
        pending_id = _charge(world, clerk, customer, 50, "reorg-charge-2")
        with app.app_context():
            svc, session = outbox_service(), get_db().session
            for sender in svc.senders_with_work(session):
                svc.send_pending(session, sender)
        depth = w3.eth.block_number - start
        revert(w3, snap)
    assert 1 <= depth <= 10
    _index(app)  # the indexer sees the reorg: the charge is paying again, the burn undone
    charges, settlements = _statuses(app)
    assert charges[paid_id] == "paying" and settlements[settlement_id] == "redeeming"

    def consistent() -> bool:
        charges, settlements = _statuses(app)
        return (
            charges == {paid_id: "paid", pending_id: "paid"}
            and settlements == {settlement_id: "requested"}
            and _projection_matches_chain(app, w3)
        )

    assert drive(app, w3, consistent, also=lambda: _index(app))
    with app.app_context():
        merchant = get_db().session.get(Merchant, world.merchant_id)
        shop_address = merchant.address
        customer_address = world.user(world.customer).addresses[0].address
        get_db().session.commit()
    assert _chain_balance(w3, app, shop_address) == 300 + 50 - 100
    assert _chain_balance(w3, app, customer_address) == 500 - 300 - 50
    relayer = Account.from_key(app.extensions["settings"].relayer_private_keys).address
    assert nonce_gap(app, w3, relayer) == 0
    # The next charge is paid.
    next_id = _charge(world, clerk, customer, 10, "reorg-charge-3")
    assert drive(app, w3, lambda: _statuses(app)[0][next_id] == "paid", also=lambda: _index(app))
    assert nonce_gap(app, w3, relayer) == 0


def test_a_charge_whose_nonce_was_taken_fails_and_its_redemption_too(app, world, w3, anvil):
    """On the new branch the relayer key's nonce of the charge went to another transaction: the
    charge is "failed" (the customer's page says nothing was taken), the redemption that burned
    those points reverts and its settlement is "failed" with an audit row; balances equal the
    chain's and nothing is owed."""
    from backend.chain.outbox_models import OutboxTx
    from backend.core.models import AuditLog
    from backend.merchants.tasks import fail_lost_redemptions
    from tests.chain._reorg_helpers import rpc

    with app.app_context():
        points_service().grant_welcome_points(world.user(world.customer), world.town())
    run_chain(app, w3)
    customer, clerk, staff = (
        world.api(world.customer), world.api(world.clerk), world.api(world.staff)
    )  # fmt: skip
    snap = snapshot(w3)
    charge_id = _charge(world, clerk, customer, 300, "reorg-charge-9")
    run_chain(app, w3, rounds=1)
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem", {"amount": 300, "idempotency_key": "redeem-9"}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    settlement_id = r.get_json()["settlement"]["id"]
    run_chain(app, w3, rounds=1)
    assert _statuses(app) == ({charge_id: "paid"}, {settlement_id: "requested"})
    with app.app_context():
        s = get_db().session
        charge = s.get(Charge, charge_id)
        code = charge.code
        nonce = s.get(OutboxTx, charge.outbox_tx_id).nonce
        s.commit()
    revert(w3, snap)
    relayer_key = app.extensions["settings"].relayer_private_keys
    relayer = Account.from_key(relayer_key).address
    foreign = Account.sign_transaction(
        {"to": relayer, "value": 0, "gas": 21_000, "maxFeePerGas": 10**11,
         "maxPriorityFeePerGas": 10**9, "nonce": nonce, "chainId": w3.eth.chain_id},
        relayer_key,
    )  # fmt: skip
    rpc(w3, "eth_sendRawTransaction", ["0x" + foreign.raw_transaction.hex()])
    rpc(w3, "anvil_mine", ["0x1"])

    def settled() -> bool:
        with app.app_context():
            fail_lost_redemptions()
        return _statuses(app) == ({charge_id: "failed"}, {settlement_id: "failed"})

    def refresh() -> None:
        _index(app)
        customer.get(f"/api/pay/{code}")  # the customer's page refreshes the charge

    assert drive(app, w3, settled, also=refresh)
    shown = customer.get(f"/api/pay/{code}").get_json()["charge"]
    assert shown["status"] == "failed"
    with app.app_context():
        merchant = get_db().session.get(Merchant, world.merchant_id)
        shop_address = merchant.address
        customer_address = world.user(world.customer).addresses[0].address
        audit = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "settlement.fail"))
            .all()
        )
        assert [a.subject_id for a in audit] == [str(settlement_id)]
        get_db().session.commit()
    assert _chain_balance(w3, app, shop_address) == 0
    assert _chain_balance(w3, app, customer_address) == 500
    assert _projection_matches_chain(app, w3)
    queue = staff.get("/api/towns/sarabetsu/settlements").get_json()["settlements"]
    assert [(q["id"], q["status"]) for q in queue] == [(settlement_id, "failed")]
    page = staff.get("/towns/sarabetsu/settlements").get_data(as_text=True)
    assert "失敗（ポイントは消却されていません）" in page
    refused = staff.post(f"/api/settlements/{settlement_id}/settle", {"bank_reference": "X-1"})
    assert refused.status_code == 409
    assert nonce_gap(app, w3, relayer) == 0
