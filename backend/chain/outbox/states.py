"""The outbox state machine: status names, the allowed transitions and their history rows.

    queued --> sent --> confirmed | reverted
       |         \\--> replaced (re-priced or cancel no-op sent) --> confirmed | reverted | ...
       \\--> cancelled | failed                                   cancelled | failed

Every change is an `OutboxTxEvent` row. The settled states are terminal here; the only way out
of them is a reorg (backend/chain/outbox_recovery.py `reopen`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, object_session

from backend.chain.errors import ChainError
from backend.chain.outbox_models import OutboxTx, OutboxTxEvent
from backend.core.db import utcnow

# Sender kinds besides role names: a user's action relayed through the forwarder, and a 0-value
# no-op that fills a nonce hole.
RELAYER = "relayer"
FILLER = "filler"


class TxState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    REPLACED = "replaced"
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    CANCELLED = "cancelled"
    FAILED = "failed"


S = TxState
TRANSITIONS: dict[TxState, frozenset[TxState]] = {
    # failed: never broadcast (estimate reverted, bad request); cancelled: deadline passed
    # before a nonce was used, or (from sent/replaced) the cancel no-op was mined.
    S.QUEUED: frozenset({S.SENT, S.CANCELLED, S.FAILED}),
    S.SENT: frozenset({S.REPLACED, S.CONFIRMED, S.REVERTED, S.CANCELLED, S.FAILED}),
    S.REPLACED: frozenset({S.REPLACED, S.CONFIRMED, S.REVERTED, S.CANCELLED, S.FAILED}),
    S.CONFIRMED: frozenset(),
    S.REVERTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}
IN_FLIGHT = (S.SENT.value, S.REPLACED.value)
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransition(ChainError, RuntimeError):
    """A state change the outbox state machine does not allow."""


def transition(tx: OutboxTx, new_state: TxState | str, reason: str = "") -> None:
    """Move `tx` to `new_state` and record the change; raises IllegalTransition otherwise."""
    old = TxState(tx.state)
    new = TxState(new_state)
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"outbox tx {tx.id}: {old} -> {new} is not allowed ({reason})")
    tx.state = new.value
    session = object_session(tx)
    if session is None:
        raise IllegalTransition(f"outbox tx {tx.id} is not in a session")
    if tx.id is None:
        session.flush()
    session.add(OutboxTxEvent(tx_id=tx.id, from_state=old.value, to_state=new.value, reason=reason))


def transition_batched(
    tx: OutboxTx, new_state: TxState | str, reason: str, events: list[dict[str, Any]]
) -> None:
    """`transition` for a worker settling many rows: the history row is appended to `events`,
    which the caller writes with `write_events` (one executemany) before it commits."""
    old = TxState(tx.state)
    new = TxState(new_state)
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"outbox tx {tx.id}: {old} -> {new} is not allowed ({reason})")
    if tx.id is None:
        raise IllegalTransition("transition_batched needs a row with an id")
    tx.state = new.value
    events.append(
        {"tx_id": tx.id, "from_state": old.value, "to_state": new.value, "reason": reason,
         "at": utcnow()}
    )  # fmt: skip


def write_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Insert the history rows collected by `transition_batched` (no RETURNING: executemany)."""
    if events:
        session.execute(insert(cast(Table, OutboxTxEvent.__table__)), events)
        events.clear()
