"""Helpers for deep-reorg tests: rewind anvil with evm_snapshot/evm_revert and drive the outbox
(send, recover, receipts) as the beat tasks do, until a state is reached (never for a time)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask
from web3 import Web3

from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxSender
from backend.core.db import get_db
from tests.anvil_pool import node_call, outbox_round


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call on w3's node: its result, or RpcError naming the method."""
    return node_call(w3)(method, params)


def snapshot(w3: Web3) -> str:
    return str(rpc(w3, "evm_snapshot", []))


def revert(w3: Web3, snap: str) -> None:
    """Drop every block mined since `snap` (a reorg onto an empty branch)."""
    assert rpc(w3, "evm_revert", [snap]) is True


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
            outbox_round(outbox_service(), get_db().session, w3, recover=recover)
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
