"""A node that does not answer for a transaction never gets its call sent twice.

When a re-broadcast is answered "nonce too low", the sender asks whether one of the row's own
transactions used that nonce. Only a clear "none of them" gives the row a fresh nonce (and a new
transaction that runs the call). A receipt not readable yet, or an error in the answer, must not:
the call would run twice. The re-pricing of stuck rows likewise leaves alone a row whose receipt
the node answered with an error. On PostgreSQL and SQLite.
"""
# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from backend.chain.errors import RpcError
from backend.chain.outbox import ContractCall, Sender, outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from tests.chain._outbox_fixtures import (  # noqa: F401  (fixtures)
    POINTS,
    PROGRAMME,
    chain,
    mine,
    node_answering,
    outbox_app,
    points,
)

RECIPIENT = "0x000000000000000000000000000000000000bEEF"
AMOUNT = 5


def _error(method: str, _params: list[Any]) -> RpcError:
    return RpcError(-32000, f"{method}: upstream unavailable")


def _nothing(_method: str, _params: list[Any]) -> None:
    return None


def _issue_and_send(svc: Any, session: Any, key: str) -> OutboxTx:
    """One admin call (points issued to RECIPIENT) queued and broadcast."""
    tx = svc.enqueue(
        session,
        ContractCall(POINTS, "issue", [RECIPIENT, AMOUNT, PROGRAMME, "welcome"]),
        sender=Sender.role("issuer", town_id=1),
        key=key,
    )
    session.commit()
    svc.send_pending(session, tx.sender_address)
    return tx


def _sent_but_not_recorded(app: Any) -> OutboxTx:
    """One admin call broadcast and mined (automine), then put back as the worker left it when
    killed between the broadcast and recording it: queued, with its nonce and signed bytes."""
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = _issue_and_send(svc, session, "crash")
        assert tx.state == "sent"
        session.execute(sa.update(OutboxTx).where(OutboxTx.id == tx.id).values(state="queued"))
        session.commit()
        session.refresh(tx)
        return tx


def _balance(chain: Any, app: Any) -> int:
    from backend.chain.registry import load_deployments

    settings = app.extensions["settings"]
    deployed = load_deployments(settings.deployments_dir, chain.eth.chain_id)
    return int(points(chain, deployed).functions.balanceOf(RECIPIENT).call())


def _settle(app: Any, chain: Any) -> OutboxTx:
    mine(chain, 3)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        svc.check_receipts(session)
        row = session.scalar(sa.select(OutboxTx))
        assert row is not None
        _ = row.attempts
        session.expunge(row)
        return row


def test_nonce_too_low_with_an_unanswered_receipt_keeps_the_nonce_and_runs_the_call_once(
    outbox_app, chain, any_db_url
):
    app = outbox_app(database_url=any_db_url)
    before = _balance(chain, app)
    tx = _sent_but_not_recorded(app)
    nonce, raw = tx.nonce, tx.raw_tx
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        # The re-broadcast is "nonce too low"; the node answers neither receipt nor transaction.
        with node_answering(
            svc, {"eth_getTransactionReceipt": _error, "eth_getTransactionByHash": _error}
        ):
            svc.send_pending(session, tx.sender_address)
        row = session.get(OutboxTx, tx.id)
        assert (row.state, row.nonce, row.raw_tx, len(row.attempts)) == ("queued", nonce, raw, 1)
        assert row.error_kind == "nonce_too_low"
        # Next run the node answers: the row's own transaction used the nonce.
        svc.send_pending(session, tx.sender_address)
        assert session.get(OutboxTx, tx.id).state == "sent"
    row = _settle(app, chain)
    assert row.state == "confirmed" and len(row.attempts) == 1 and row.nonce == nonce
    assert _balance(chain, app) == before + AMOUNT  # once


def test_nonce_too_low_with_no_receipt_yet_asks_for_the_transaction_and_runs_the_call_once(
    outbox_app, chain, any_db_url
):
    """The node counts the nonce before the receipt can be read: the transaction itself,
    asked for by hash, shows the row's own transaction used it."""
    app = outbox_app(database_url=any_db_url)
    before = _balance(chain, app)
    tx = _sent_but_not_recorded(app)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        with node_answering(svc, {"eth_getTransactionReceipt": _nothing}):
            svc.send_pending(session, tx.sender_address)
        row = session.get(OutboxTx, tx.id)
        assert row.state == "sent" and len(row.attempts) == 1
    assert _settle(app, chain).state == "confirmed"
    assert _balance(chain, app) == before + AMOUNT


def test_a_stuck_row_whose_receipt_is_answered_with_an_error_is_not_repriced(
    outbox_app, chain, any_db_url
):
    app = outbox_app(database_url=any_db_url)
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        with app.app_context():
            svc, session = outbox_service(), get_db().session
            tx = _issue_and_send(svc, session, "stuck")
            with node_answering(svc, {"eth_getTransactionReceipt": _error}):
                assert svc.bump_stuck(session, stuck_blocks=0) == 0
            assert len(session.get(OutboxTx, tx.id).attempts) == 1
            # Answered (no receipt: really unmined), it is re-priced as before.
            assert svc.bump_stuck(session, stuck_blocks=0) == 1
            assert len(session.get(OutboxTx, tx.id).attempts) == 2
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
