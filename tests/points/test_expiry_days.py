"""Issue 10 §3 on anvil, through the app: points under three programmes with different expiry
days; the chain's clock moves across several expiry days while the user pays a shop and the
shop redeems. No payment of unexpired points reverts, expired points are never spent, and what
the API and the page show (balance and lots) equals the chain after every step. The expiry job
burns what nobody moved, with the expirer role key, and says when it is late.

On 14f85a7 the first payment after the first expiry day reverts (RegionPointsExpirySweepPending)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from celery.contrib.testing.worker import start_worker
from web3 import Web3

from backend.accounts.models import User
from backend.chain.indexer_tasks import index_blocks, reconcile_projection
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxAlert, OutboxTx
from backend.chain.registry import artifact
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.expiry import ALERT_KIND, expire_due
from backend.points.lots import day_start, jst_day
from backend.points.services import points_service
from backend.points.tasks import expire_lots
from backend.regions.models import Town
from tests.chain_admin import role_address
from tests.points.conftest import PASSWORD, run_chain

DAY = 86_400
WELCOME, PAID, THANKS, PRIZE = 1, 2, 3, 4  # 180, 180, 90, 30 days (backend/points/programmes.py)


def _points(w3: Web3, app: Any, town_id: int) -> Any:
    with app.app_context():
        address = get_db().session.get(Town, town_id).points_address
    return w3.eth.contract(address=address, abi=artifact("RegionPoints").abi)


def _user_address(app: Any, user_id: int) -> str:
    with app.app_context():
        from backend.accounts.services import AccountService
        from backend.chain.custody import get_vault

        s = get_db().session
        svc = AccountService(s(), lambda: get_vault(app))
        return str(svc.custodial_address(s.get(User, user_id)).address)


def _send(w3: Web3, fn: Any, sender: str) -> Any:
    w3.provider.make_request("anvil_impersonateAccount", [sender])
    try:
        if w3.eth.get_balance(sender) < 10**17:
            w3.provider.make_request("anvil_setBalance", [sender, hex(10**19)])
        tx = fn.transact({"from": sender, "gas": 1_000_000})
        rc = w3.eth.wait_for_transaction_receipt(tx)
    finally:
        w3.provider.make_request("anvil_stopImpersonatingAccount", [sender])
    assert rc.status == 1, rc
    return rc


def _reverts(fn: Any, sender: str, error: str) -> None:
    from tests.contracts._points_helpers import reverts

    with reverts(error):
        fn.call({"from": sender})


def _chain_now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest").timestamp)


def _move_to(w3: Web3, ts: int) -> None:
    w3.provider.make_request("evm_increaseTime", [max(ts - _chain_now(w3), 0)])
    w3.provider.make_request("anvil_mine", ["0x1"])


def _settle(app: Any, w3: Web3) -> None:
    """Mine a few blocks past the confirmations and index (the worker's beat)."""
    w3.provider.make_request("anvil_mine", ["0x4"])
    with app.app_context():
        index_blocks()


def _assert_app_equals_chain(app: Any, client: Any, points: Any, town_id: int, who: str) -> None:
    days, amounts = points.functions.lotsOf(who).call()
    today = jst_day(_chain_now(points.w3))
    chain_live = [(d, a) for d, a in zip(days, amounts, strict=True) if d > today]
    lasting = points.functions.rawBalanceOf(who).call() - sum(amounts)
    balance = points.functions.balanceOf(who).call()
    with app.app_context():
        summary = points_service().summary(get_db().session.get(Town, town_id), who)
    assert summary.confirmed == balance
    shown = [
        (jst_day(int(lot.expires_at.timestamp())), lot.remaining)
        for lot in summary.lots
        if lot.expires_at
    ]
    assert shown == chain_live
    assert sum(lot.remaining for lot in summary.lots if lot.expires_at is None) == lasting
    assert sum(lot.remaining for lot in summary.lots) == balance


@pytest.fixture
def shop(app: Any, w3: Web3, town_id: int) -> str:
    shop = Web3.to_checksum_address("0x" + "5e" * 20)
    _send(w3, _points(w3, app, town_id).functions.addMerchant(shop), role_address("merchant_admin"))
    return shop


def test_points_under_three_programmes_across_expiry_days(app, town_id, user_id, w3, shop):
    p = _points(w3, app, town_id)
    f = p.functions
    me = _user_address(app, user_id)
    issuer = role_address("issuer")
    start = _chain_now(w3)
    _send(w3, f.issue(me, 100, PRIZE, "stamp rally"), issuer)  # 30 days
    _send(w3, f.issue(me, 200, THANKS, "snow clearing"), issuer)  # 90 days
    _send(w3, f.issue(me, 300, WELCOME, "welcome"), issuer)  # 180 days
    _send(w3, f.issue(me, 40, PAID, "bought"), issuer)  # paid: 180 days
    friend = Web3.to_checksum_address("0x" + "f1" * 20)
    _send(w3, f.issue(friend, 60, PRIZE, "stamp rally"), issuer)
    _settle(app, w3)
    client = app.test_client()
    token = client.get("/api/csrf").get_json()["csrf_token"]
    r = client.post(
        "/api/auth/login",
        json={"email": "fan@example.com", "password": PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert r.status_code == 200
    _assert_app_equals_chain(app, client, p, town_id, me)
    api = client.get("/api/points").get_json()["towns"][0]
    assert api["confirmed"] == 640 and len(api["lots"]) == 3  # welcome and paid share a day

    spent = redeemed = 0
    issue_day = jst_day(start)
    # Step across the 30-, 90- and 180-day expiry days, landing on each day's first second.
    for step, ts in enumerate(
        [
            start + 10 * DAY,
            day_start(issue_day + 31) - 1,
            day_start(issue_day + 31),
            day_start(issue_day + 31) + 3 * 3600,
            start + 60 * DAY,
            day_start(issue_day + 91),
            start + 120 * DAY,
            day_start(issue_day + 181),
            start + 183 * DAY,
        ]
    ):
        _move_to(w3, ts)
        balance = f.balanceOf(me).call()
        # expired points are never spent: one point more than the unexpired balance reverts
        _reverts(f.transfer(shop, balance + 1), me, "ERC20InsufficientBalance")
        if balance:
            amount = min(balance, 15 + step)
            _send(w3, f.transfer(shop, amount), me)  # never reverts for unexpired points
            spent += amount
        if step == 2:  # the friend gives points on the prize's expiry day: only unexpired ones
            assert f.balanceOf(friend).call() == 0
            _reverts(f.transfer(me, 1), friend, "ERC20InsufficientBalance")
        if step == 4:  # a gift moves a lot piece with its expiry day (PointsLotMoved)
            _send(w3, f.issue(friend, 40, THANKS, "gift"), issuer)  # keeps 15
            _send(w3, f.transfer(me, 25), friend)
        shop_balance = f.balanceOf(shop).call()
        if shop_balance:
            _send(w3, f.redeem(shop_balance, b"\x01" * 32), shop)  # the merchant redemption
            redeemed += shop_balance
        _settle(app, w3)
        _assert_app_equals_chain(app, client, p, town_id, me)
        _assert_app_equals_chain(app, client, p, town_id, friend)
        api = client.get("/api/points").get_json()["towns"][0]
        assert api["confirmed"] == f.balanceOf(me).call()
        # In English the page writes a day as the API does (Japanese: 2027年1月4日).
        page = client.get("/points", headers={"Accept-Language": "en"}).get_data(as_text=True)
        for lot in api["lots"]:
            if lot["last_day"]:
                assert lot["last_day"] in page
    assert f.balanceOf(me).call() == 0 and spent == redeemed
    assert f.totalRedeemed().call() == redeemed
    # the friend's expired piece is still unburned: reconciliation compares the indexer's
    # Transfer sums with rawBalanceOf and finds no difference (on 14f85a7's reconciler against
    # this contract, balanceOf would differ by the expired points)
    assert f.expiredBalanceOf(friend).call() == 15
    with app.app_context():
        result = reconcile_projection()
        assert result["checked"] > 0 and result["differences"] == []

    # nobody moved the friend's expired thank-you piece: the expiry job burns it, audited, with
    # the expirer key, and says it is late (its day started more than 6 hours ago)
    # the beat task, run by a real Celery worker; "now" is the chain's latest block
    celery = app.extensions["celery"]
    # A message an earlier test left in this run's queue (e.g. the beat schedule's first
    # points.expire_lots) would otherwise run first, queue the burn and make our run a no-op.
    with celery.connection_for_write() as conn:
        conn.default_channel.queue_purge(celery.conf.task_default_queue)
    with start_worker(
        celery,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[celery.conf.task_default_queue],
        shutdown_timeout=10,
    ):
        out = expire_lots.apply_async(ignore_result=False).get(timeout=60)
    assert out["late"] == [p.address] and out["queued"][p.address] >= 1
    with app.app_context():
        session = get_db().session
        queued = list(
            session.scalars(sa.select(OutboxTx).where(OutboxTx.function == "expire")).one().args[0]
        )
        assert friend in queued and len(queued) == out["queued"][p.address]
        assert all(f.expiredBalanceOf(h).call() > 0 for h in queued)
        assert session.scalar(sa.select(OutboxAlert.kind).where(OutboxAlert.kind == ALERT_KIND))
        tx = session.scalars(sa.select(OutboxTx).where(OutboxTx.function == "expire")).one()
        assert tx.sender_kind == "expirer"
        assert session.scalars(sa.select(AuditLog).where(AuditLog.action == "points.expire")).one()
    run_chain(app, w3)
    _settle(app, w3)
    assert all(f.expiredBalanceOf(h).call() == 0 for h in queued)
    assert f.balanceOf(friend).call() == f.rawBalanceOf(friend).call() == 0
    with app.app_context():
        session = get_db().session
        report = expire_due(session, outbox_service(), now=lambda: _chain_now(w3))
        assert report.queued == {} and report.late == []
        alert = session.scalars(sa.select(OutboxAlert).where(OutboxAlert.kind == ALERT_KIND)).one()
        assert alert.resolved_at is not None
    assert dt.datetime.fromtimestamp(_chain_now(w3), dt.UTC) > dt.datetime.fromtimestamp(
        start, dt.UTC
    ) + dt.timedelta(days=182)


def test_paid_points_keep_the_six_month_rule(app, town_id, w3):
    """資金決済法: paid points expire within 180 days. The presets and the demo town's deployed
    programmes keep the rule; a paid programme that never expires or lives longer is refused."""
    from backend.points.programmes import (
        MAX_PAID_DAYS,
        PRESETS,
        Programme,
        ProgrammeRuleError,
    )

    p = _points(w3, app, town_id)
    for preset in PRESETS:
        days, active = p.functions.programme(preset.programme_id).call()
        assert (days, active) == (preset.expiry_days, True)
        if preset.paid:
            assert 1 <= days <= MAX_PAID_DAYS
    assert any(pr.paid and pr.expiry_days == 180 for pr in PRESETS)
    for bad in (0, 181, 365):
        with pytest.raises(ProgrammeRuleError):
            Programme(9, bad, paid=True)
    assert Programme(9, 0).expiry_days == 0  # free points may never expire
