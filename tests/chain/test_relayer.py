"""The relayer under stress: concurrent identical requests, RPC down, lost answers, no funds."""
# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account

import backend.chain.outbox_tasks as outbox_tasks
from backend.chain.outbox import (
    ContractCall,
    RpcClient,
    RpcUnavailable,
    Sender,
    outbox_service,
)
from backend.chain.outbox_models import OutboxAlert, OutboxSender, OutboxTx
from backend.core.db import get_db
from tests.chain._outbox_fixtures import (  # noqa: F401  (fixtures)
    POINTS,
    PROGRAMME,
    chain,
    forwarder,
    give_points,
    mine,
    outbox_app,
    points,
    rpc_proxy,
    settle,
    user,
)
from tests.concurrency import n_at_once

RECIPIENT = "0x000000000000000000000000000000000000dEaD"


def _deployments(app):
    from backend.chain.registry import load_deployments

    with app.app_context():
        return load_deployments(
            app.extensions["settings"].deployments_dir, outbox_service().chain_id
        )


def _pay(svc, session, signer, key="pay-1", amount=100):
    return svc.enqueue(
        session,
        ContractCall(POINTS, "transfer", [RECIPIENT, amount]),
        sender=Sender.user(signer, town_id=1, user_id=1),
        key=key,
    )


def test_ten_concurrent_identical_requests_have_one_effect_and_no_nonce_gap(
    outbox_app, chain, anvil, user
):
    app = outbox_app()
    deployed = _deployments(app)
    give_points(chain, deployed, anvil, user.address, 1_000)
    contract = points(chain, deployed)
    before = contract.functions.balanceOf(RECIPIENT).call()

    def request(_i: int) -> int:
        session = get_db().session
        tx = _pay(outbox_service(), session, user)
        session.commit()
        return tx.id

    answers = n_at_once(app, 10, request)
    errors = [a for a in answers if isinstance(a, BaseException)]
    ids = [a for a in answers if not isinstance(a, BaseException)]
    assert not errors, errors
    assert len(ids) == 10 and len(set(ids)) == 1
    settle(app, chain)
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 100
    assert forwarder(chain, deployed).functions.nonces(user.address).call() == 1
    relayer = Account.from_key(anvil.keys[7]).address
    with app.app_context():
        session = get_db().session
        rows = session.scalars(sa.select(OutboxTx)).all()
        assert [r.state for r in rows] == ["confirmed"]
        sender = session.get(OutboxSender, relayer)
        assert chain.eth.get_transaction_count(relayer) == sender.next_nonce == rows[0].nonce + 1


class LosesAnswers(RpcClient):
    """Sends the transactions, then 'times out' before the answer arrives (once)."""

    lost = 0

    def batch(self, calls):
        answers = super().batch(calls)
        if self.lost == 0 and any(m == "eth_sendRawTransaction" for m, _ in calls):
            self.lost += 1
            raise RpcUnavailable("read timed out")
        return answers


def test_a_broadcast_whose_answer_is_lost_is_not_sent_twice(outbox_app, chain, anvil, user):
    app = outbox_app()
    deployed = _deployments(app)
    give_points(chain, deployed, anvil, user.address, 1_000)
    contract = points(chain, deployed)
    before = contract.functions.balanceOf(RECIPIENT).call()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        svc.rpc = LosesAnswers(app.extensions["settings"].rpc_url)
        for i in range(3):
            _pay(svc, session, user, key=f"pay-{i}", amount=10)
        session.commit()
        sender = svc.keys.relayer_for(user.address)
        with pytest.raises(RpcUnavailable):
            svc.send_pending(session, sender)
        session.rollback()
        rows = session.scalars(sa.select(OutboxTx)).all()
        assert {r.state for r in rows} == {"queued"} and all(r.raw_tx for r in rows)
        mine(chain)  # the "lost" transactions were mined meanwhile
    settle(app, chain)
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 30
    with app.app_context():
        rows = get_db().session.scalars(sa.select(OutboxTx)).all()
        assert {r.state for r in rows} == {"confirmed"}
        nonces = sorted(r.nonce for r in rows)  # rows come back in no particular order
        assert nonces == list(range(nonces[0], nonces[0] + 3))
        assert all(len(r.attempts) == 1 for r in rows)


def test_rpc_down_tasks_retry_with_backoff_and_recover(
    outbox_app, chain, anvil, rpc_proxy, monkeypatch
):
    delays: list[float] = []
    real_backoff = outbox_tasks.backoff

    def quick_backoff(retries: int) -> float:
        delays.append(real_backoff(retries))
        return 0.2 * 2**retries

    monkeypatch.setattr(outbox_tasks, "backoff", quick_backoff)
    rpc_proxy.up()
    app = outbox_app(rpc_url=rpc_proxy.url)
    contract = points(chain, _deployments(app))
    before = contract.functions.balanceOf(RECIPIENT).call()

    with app.app_context():
        outbox_service()  # built while the RPC answers; the worker shares it
    rpc_proxy.down()
    worker_ctx = _start_worker(app)
    with worker_ctx:
        with app.app_context():
            svc, session = outbox_service(), get_db().session
            svc.auto_dispatch = True
            tx = svc.enqueue(
                session,
                ContractCall(POINTS, "issue", [RECIPIENT, 100, PROGRAMME, "down"]),
                sender=Sender.role("issuer"),
                key="issue-while-down",
            )
            session.commit()  # dispatches chain.send_outbox after commit
            tx_id = tx.id
        _wait(lambda: len(delays) >= 2, 15)
        with app.app_context():
            assert get_db().session.get(OutboxTx, tx_id).state == "queued"
        rpc_proxy.up()
        _wait(lambda: _state(app, tx_id) == "sent", 20)
    mine(chain)
    with app.app_context():
        outbox_service().check_receipts(get_db().session)
    assert _state(app, tx_id) == "confirmed"
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 100
    assert delays[:2] == [1.0, 2.0]  # exponential backoff (shortened in this test)


def _start_worker(app):
    from celery.contrib.testing.worker import start_worker

    celery = app.extensions["celery"]
    return start_worker(
        celery,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[celery.conf.task_default_queue],
        shutdown_timeout=10,
    )


def _state(app, tx_id: int) -> str:
    with app.app_context():
        session = get_db().session
        tx = session.get(OutboxTx, tx_id)
        state = tx.state
        session.rollback()
        return state


def _wait(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_relayer_out_of_funds_queues_alerts_and_resumes_after_top_up(
    outbox_app, chain, anvil, user
):
    poor = Account.create()
    chain.provider.make_request("anvil_setBalance", [poor.address, hex(10**12)])
    app = outbox_app(relayer_private_keys="0x" + poor.key.hex().removeprefix("0x"))
    deployed = _deployments(app)
    give_points(chain, deployed, anvil, user.address, 1_000)
    contract = points(chain, deployed)
    before = contract.functions.balanceOf(RECIPIENT).call()
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        for i in range(2):
            _pay(svc, session, user, key=f"pay-{i}", amount=10)
        session.commit()
        report = svc.send_pending(session, poor.address)
        assert report.sent == 0 and report.waiting_for_funds == 2
        rows = session.scalars(sa.select(OutboxTx)).all()
        assert {r.state for r in rows} == {"queued"}
        alerts = session.scalars(
            sa.select(OutboxAlert).where(OutboxAlert.resolved_at.is_(None))
        ).all()
        assert {a.kind for a in alerts} == {"relayer_low_funds", "relayer_low_balance"}
        session.commit()
    chain.provider.make_request("anvil_setBalance", [poor.address, hex(10**18)])
    settle(app, chain)
    assert contract.functions.balanceOf(RECIPIENT).call() == before + 20
    with app.app_context():
        session = get_db().session
        rows = session.scalars(sa.select(OutboxTx).order_by(OutboxTx.nonce)).all()
        assert [r.state for r in rows] == ["confirmed", "confirmed"]
        assert [r.nonce for r in rows] == [0, 1]
        assert (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(OutboxAlert)
                .where(OutboxAlert.resolved_at.is_(None))
            )
            == 0
        )
