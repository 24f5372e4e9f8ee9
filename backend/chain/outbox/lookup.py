"""What the node says of outbox rows' transactions: every attempt of every row asked for in one
batch, by hash (`BY_HASH`) or for its receipt (`RECEIPT`). The sending, receipt and recovery
rules that decide "another transaction took this row's nonce" read these answers; each answer
is a dict, None (the node does not have it) or an RpcError (it did not say)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from backend.chain.outbox.rpc import RpcClient
from backend.chain.outbox_models import OutboxAttempt, OutboxTx

BY_HASH = "eth_getTransactionByHash"
RECEIPT = "eth_getTransactionReceipt"


def ask_attempts(rpc: RpcClient, rows: Sequence[OutboxTx], method: str) -> dict[int, list[Any]]:
    """Per row id, the node's answers to `method` for each of the row's attempts."""
    pairs = [(t.id, a.tx_hash) for t in rows for a in t.attempts]
    out: dict[int, list[Any]] = {t.id: [] for t in rows}
    if pairs:
        answers = rpc.batch([(method, [tx_hash]) for _, tx_hash in pairs])
        for (tx_id, _), answer in zip(pairs, answers, strict=True):
            out[tx_id].append(answer)
    return out


def each_attempt(
    rows: Sequence[OutboxTx], answers: dict[int, list[Any]]
) -> Iterator[tuple[OutboxTx, OutboxAttempt, Any]]:
    """(row, attempt, the node's answer for it) for every attempt of `rows`, from
    `ask_attempts`'s answers."""
    for t in rows:
        yield from ((t, a, answer) for a, answer in zip(t.attempts, answers[t.id], strict=True))


def in_block(answer: Any) -> bool:
    """A transaction (by hash) the node has in a block, not only in its pool."""
    return isinstance(answer, dict) and answer.get("blockNumber") is not None
