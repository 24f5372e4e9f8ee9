"""What a failed test's report carries when the test had an app: the outbox's history (rows,
attempts, state changes) and the transactions its senders have on chain.

Chain work that fails once in a while in full runs, and never alone, is explained by this and
nothing else: a set-up step whose nonce another transaction took (onboarding), a collection
that stayed "setting up" in a journey. It is read when the test's call has failed, before its
fixtures undo the chain."""

from __future__ import annotations

from typing import Any

from flask import Flask

from backend.core.db import get_db

BLOCKS_BACK = 400  # the chain's recent blocks are searched for the senders' transactions


def app_of(funcargs: dict[str, Any]) -> Flask | None:
    """The test's app, under any of the names the fixtures give it."""
    for name in ("app", "shop_app"):
        if isinstance(funcargs.get(name), Flask):
            return funcargs[name]  # type: ignore[no-any-return]
    return None


def outbox_and_chain(app: Flask) -> str:
    lines: list[str] = []
    try:
        senders = _outbox_rows(app, lines)
    except Exception as exc:  # noqa: BLE001 - a report of a failure must not fail itself
        return f"(the outbox could not be read: {exc!r})"
    try:
        _senders_on_chain(app, senders, lines)
    except Exception as exc:  # noqa: BLE001
        lines.append(f"(the chain could not be read: {exc!r})")
    return "\n".join(lines)


def _outbox_rows(app: Flask, lines: list[str]) -> set[str]:
    import sqlalchemy as sa

    from backend.chain.outbox_models import OutboxAttempt, OutboxTx, OutboxTxEvent

    senders: set[str] = set()
    with app.app_context():
        s = get_db().session
        for t in s.scalars(sa.select(OutboxTx).order_by(OutboxTx.id)):
            senders.add(t.sender_address.lower())
            lines.append(
                f"tx {t.id} {t.sender_kind} {t.sender_address} {t.function} "
                f"subject={t.subject_kind}:{t.subject_id} nonce={t.nonce} state={t.state} "
                f"sent_block={t.sent_block} block={t.block_number} error={t.error}"
            )
            for a in s.scalars(
                sa.select(OutboxAttempt)
                .where(OutboxAttempt.tx_id == t.id)
                .order_by(OutboxAttempt.id)
            ):
                lines.append(
                    f"  attempt {a.kind} nonce={a.nonce} {a.tx_hash} fee={a.max_fee_per_gas}"
                )
            for e in s.scalars(
                sa.select(OutboxTxEvent)
                .where(OutboxTxEvent.tx_id == t.id)
                .order_by(OutboxTxEvent.id)
            ):
                lines.append(f"  {e.at.time()} {e.from_state} -> {e.to_state}: {e.reason}")
        s.commit()
    return senders


def _senders_on_chain(app: Flask, senders: set[str], lines: list[str]) -> None:
    from backend.chain.rpc import JsonRpc

    with JsonRpc(app.extensions["settings"].rpc_url) as node:
        head = node.block_number()
        lines.append(f"chain head {head}")
        numbers = range(max(0, head - BLOCKS_BACK), head + 1)
        blocks = node.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
    for n, block in zip(numbers, blocks, strict=True):
        for tx in block["transactions"]:
            if tx["from"].lower() in senders:
                lines.append(
                    f"block {n} t={int(block['timestamp'], 16)}: {tx['from']} "
                    f"nonce {int(tx['nonce'], 16)} {tx['hash']}"
                )
