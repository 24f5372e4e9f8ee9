"""Helpers for deep-reorg tests: rewind anvil with evm_snapshot/evm_revert and drive the outbox
(send, recover, receipts) as the beat tasks do, until a state is reached (never for a time)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask
from web3 import Web3

from backend.chain.outbox import OutboxService, outbox_service
from backend.chain.outbox_models import OutboxSender
from backend.chain.outbox_recovery import recover_reorged
from backend.chain.rpc import JsonRpc
from backend.core.db import get_db
from tests.anvil_pool import StuckPool


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in resp, resp
    return resp["result"]


def snapshot(w3: Web3) -> str:
    return str(rpc(w3, "evm_snapshot", []))


def revert(w3: Web3, snap: str) -> None:
    """Drop every block mined since `snap` (a reorg onto an empty branch)."""
    assert rpc(w3, "evm_revert", [snap]) is True


def wait_until_mined(w3: Web3, timeout: float = 60.0) -> None:
    """With automine on, wait until the node's pool holds nothing a block should take.

    anvil's automine mines in the background: eth_sendRawTransaction answers before the block
    exists. On a loaded machine a receipt read and an index run right after the send found
    nothing (a full run, stop 28: a DAO vote mined one second after the two beat rounds had
    ended). With automine off the pool is the test's to empty, so there is nothing to wait for.
    A state is awaited, never a time; `timeout` only turns a hang into a failure."""
    if not rpc(w3, "anvil_getAutomine", []):
        return
    deadline = time.monotonic() + timeout
    with JsonRpc(w3.provider.endpoint_uri) as node:  # type: ignore[attr-defined]
        pool = StuckPool(node.call)
        while not pool.settled():
            assert time.monotonic() < deadline, "anvil did not mine its pending transactions"
            pool.check()  # what automine missed is mined or sent again (tests/anvil_pool.py)
            time.sleep(0.01)


@contextlib.contextmanager
def no_automine(w3: Web3) -> Iterator[None]:
    """Transactions broadcast inside stay in the pool (pending) until mined by hand."""
    rpc(w3, "evm_setAutomine", [False])
    try:
        yield
    finally:
        rpc(w3, "evm_setAutomine", [True])


def drive(
    app: Flask,
    w3: Web3,
    until: Callable[[], bool],
    *,
    rounds: int = 12,
    recover: bool = True,
    also: Callable[[], None] | None = None,
) -> bool:
    """One beat round after another (send, recover, mine, receipts, then `also`, e.g. the
    indexer) until `until()` holds; False when it still does not after `rounds` rounds."""
    for _ in range(rounds):
        with app.app_context():
            svc: OutboxService = outbox_service()
            session = get_db().session
            for sender in svc.senders_with_work(session):
                svc.send_pending(session, sender)
            if recover:
                recover_reorged(svc, session)
            rpc(w3, "anvil_mine", ["0x1"])
            svc.check_receipts(session)
        if also is not None:
            also()
        if until():
            return True
    return False


def nonce_gap(app: Flask, w3: Web3, address: str) -> int:
    """The outbox's next nonce minus the chain's (0: no gap)."""
    with app.app_context():
        session = get_db().session
        sender = session.get(OutboxSender, address)
        assert sender is not None
        session.refresh(sender)
        gap = sender.next_nonce - w3.eth.get_transaction_count(address)  # type: ignore[arg-type]
        session.commit()
        return int(gap)
