"""The receipt check fails a row for "nonce consumed by another transaction" only when the node
says so, in two rounds: its sender's nonce is used, and none of the row's transactions is on
chain when asked one by one. A receipt the node does not give (an error in the batch, or no
receipt yet for a mined transaction) leaves the row in flight for the next round. On PostgreSQL
and SQLite."""
# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from eth_account import Account

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
)
from tests.chain_admin import role_address, role_key

RECIPIENT = "0x000000000000000000000000000000000000bEEF"


def _send_one(app: Any, key: str) -> int:
    """Queue one admin call and broadcast it; returns its row id."""
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        tx = svc.enqueue(
            session,
            ContractCall(POINTS, "issue", [RECIPIENT, 5, PROGRAMME, "welcome"]),
            sender=Sender.role("issuer", town_id=1),
            key=key,
        )
        session.commit()
        svc.send_pending(session, tx.sender_address)
        assert tx.state == "sent", tx.state
        return tx.id


def _row(app: Any, tx_id: int) -> OutboxTx:
    with app.app_context():
        row = get_db().session.get(OutboxTx, tx_id)
        assert row is not None
        _ = row.attempts  # loaded before the row leaves the session
        get_db().session.expunge(row)
        return row


def test_a_nonce_another_transaction_took_fails_the_row_and_says_which(
    outbox_app, chain, any_db_url
):
    app = outbox_app(database_url=any_db_url)
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        tx_id = _send_one(app, "taken")
        ours = _row(app, tx_id)
        # The node forgets our transaction, and the same key sends another one on that nonce.
        chain.provider.make_request("anvil_dropAllTransactions", [])
        issuer = role_address("issuer")
        other = Account.from_key(role_key("issuer")).sign_transaction(
            {
                "to": issuer,
                "value": 0,
                "gas": 21_000,
                "nonce": ours.nonce,
                "chainId": chain.eth.chain_id,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        chain.eth.send_raw_transaction(other.raw_transaction)
        mine(chain, 3)
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        # The verdict is final, so it must hold in two rounds (here with no time between them).
        svc.receipts.consumed_grace = 0
        assert svc.check_receipts(session) == {}
        assert session.get(OutboxTx, tx_id).state == "sent"
        assert svc.check_receipts(session) == {"failed": 1}
    row = _row(app, tx_id)
    assert row.state == "failed" and row.error_kind == "nonce_too_low"
    assert f"nonce {ours.nonce}" in row.error and ours.attempts[0].tx_hash in row.error


def test_a_mined_row_is_not_failed_when_its_receipt_is_not_given_yet(outbox_app, chain, any_db_url):
    """The node has counted the nonce, but the receipt batch answers nothing for our hash (an
    error, or no receipt yet): the row waits, and confirms once the receipt is there."""
    app = outbox_app(database_url=any_db_url)
    tx_id = _send_one(app, "mined")  # automine: mined at once
    mine(chain, 3)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        real = svc.rpc.batch

        def receipts_missing(answer: Any) -> Any:
            def batch(calls: list[tuple[str, list[Any]]]) -> list[Any]:
                if calls and calls[0][0] == "eth_getTransactionReceipt":
                    return [answer] * len(calls)
                return real(calls)

            return batch

        for answer in (RpcError(-32000, "header not found"), None):
            svc.rpc.batch = receipts_missing(answer)  # type: ignore[method-assign]
            try:
                assert svc.check_receipts(session) == {}
            finally:
                del svc.rpc.batch
            assert session.get(OutboxTx, tx_id).state == "sent"
        assert svc.check_receipts(session) == {"confirmed": 1}
    assert _row(app, tx_id).state == "confirmed"


def test_a_mined_transaction_the_node_does_not_show_yet_is_not_failed(
    outbox_app, chain, any_db_url
):
    """The nonce is counted while the row's transaction is unknown by receipt and by hash (the
    answers came from nodes at different heights, behind a provider's load balancer). The next
    round, at least `consumed_grace` seconds later, sees it mined."""
    app = outbox_app(database_url=any_db_url)
    tx_id = _send_one(app, "not-yet")
    mine(chain, 3)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        svc.receipts.consumed_grace = 0
        lookups = ("eth_getTransactionReceipt", "eth_getTransactionByHash")
        unknown = {m: lambda *_: None for m in lookups}
        with node_answering(svc, unknown):
            assert svc.check_receipts(session) == {}
        assert session.get(OutboxTx, tx_id).state == "sent"
        assert svc.check_receipts(session) == {"confirmed": 1}


def test_no_transaction_is_asked_for_one_by_one_when_every_receipt_is_there(outbox_app, chain):
    app = outbox_app()
    tx_id = _send_one(app, "plain")
    mine(chain, 3)
    with app.app_context():
        svc, session = outbox_service(), get_db().session
        real, asked = svc.rpc.batch, []

        def batch(calls: list[tuple[str, list[Any]]]) -> list[Any]:
            asked.extend(method for method, _ in calls)
            return real(calls)

        svc.rpc.batch = batch  # type: ignore[method-assign]
        try:
            assert svc.check_receipts(session) == {"confirmed": 1}
        finally:
            del svc.rpc.batch
        assert "eth_getTransactionByHash" not in asked
        state = session.scalar(sa.select(OutboxTx.state).where(OutboxTx.id == tx_id))
    assert state == "confirmed"
