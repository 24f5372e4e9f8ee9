"""What domains see of the indexer: `ChainEvent`, the handler registry (`register_handler`,
the `_Fold` shortcut of aggregating handlers), `watch_contract` and `pending_events`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain.indexer_models import (
    ChainEventRecord,
    PendingEventRecord,
    WatchedContract,
)
from backend.chain.outbox_models import OutboxAttempt, OutboxTx
from backend.chain.registry import artifact

ZERO_ADDRESS = "0x" + "00" * 20


class EventSubject(NamedTuple):
    """The business row whose outbox transaction emitted an event, e.g. ("charge", 42): the
    outbox row's subject_kind and subject_id."""

    kind: str
    id: int


@dataclass(frozen=True)
class ChainEvent:
    """A decoded log. `args` holds Python ints, checksummed addresses and 0x-hex bytes."""

    chain_id: int
    contract_key: str
    contract_address: str
    contract_name: str  # the artifact, e.g. "RegionPoints"
    event_name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    confirmed: bool = True
    # When the block was mined (its header's timestamp, Unix seconds), as the chain's contracts
    # see `block.timestamp`: set on every event a handler gets, from the headers the indexer
    # reads, so that handlers need not ask the node. None on pending events.
    block_time: int | None = None
    # The business row that sent the transaction (the outbox row's subject, looked up by the
    # transaction hash once per chunk); None when the platform did not send it or named none.
    # Set on every event a handler gets.
    subject: EventSubject | None = None


HandlerFn = Callable[[Session, Sequence[ChainEvent]], None]


@dataclass(frozen=True)
class Handler:
    event_name: str
    apply: HandlerFn
    revert: HandlerFn
    contract: str | None = None  # a contract key, artifact name or address; None: any
    fold: _Fold | None = field(default=None, compare=False)  # see _Fold

    def matches(self, ev: ChainEvent) -> bool:
        return self.matches_source(
            ev.event_name, ev.contract_key, ev.contract_name, ev.contract_address
        )

    def matches_source(self, event_name: str, key: str, artifact_name: str, address: str) -> bool:
        """Whether events named `event_name` of that contract go to this handler (the indexer
        asks once per contract and event per chunk, not once per event)."""
        if event_name != self.event_name:
            return False
        if self.contract is None:
            return True
        c = self.contract
        return c in (key, artifact_name) or c.lower() == address.lower()


@dataclass(frozen=True)
class _Fold:
    """A shortcut for handlers that only aggregate (the built-in token projection): when
    indexing, `step(state, contract_address, args)` is called for each of the chunk's events
    in chain order and then `finish(session, chain_id, state)` once, which must have the same
    effect as `apply` on those events, without building a ChainEvent per event. `revert`
    (reorgs, rare and short) still gets ChainEvents."""

    step: Callable[[dict[str, Any], str, dict[str, Any]], None]
    finish: Callable[[Session, int, dict[str, Any]], None]
    # Optional: `bind(state, contract_address, names)` -> a step taking the event's values as
    # a tuple in `names` order (the indexer binds once per contract and event per chunk).
    binder: Callable[[dict[str, Any], str, tuple[str, ...]], _FoldStep] | None = None

    def bind(self, state: dict[str, Any], contract: str, names: tuple[str, ...]) -> _FoldStep:
        if self.binder is not None:
            return self.binder(state, contract, names)
        step = self.step

        def generic(values: tuple[Any, ...]) -> None:
            step(state, contract, dict(zip(names, values, strict=True)))

        return generic


_HANDLERS: list[Handler] = []

_FoldStep = Callable[[tuple[Any, ...]], None]


def register_handler(
    event_name: str, apply: HandlerFn, revert: HandlerFn, *, contract: str | None = None
) -> Handler:
    """Call `apply(session, events)` for every confirmed `event_name` (of `contract`, if given)
    inside the indexing transaction, and `revert(session, events)` (newest first) when a reorg
    removes them. Both must only touch the database through `session`."""
    handler = Handler(event_name, apply, revert, contract)
    _HANDLERS.append(handler)
    return handler


def unregister_handler(handler: Handler) -> None:
    if handler in _HANDLERS:
        _HANDLERS.remove(handler)


def watch_contract(
    session: Session, chain_id: int, key: str, artifact_name: str, address: str, from_block: int
) -> None:
    """Index `address` (ABI `artifact_name`) from `from_block`, in the caller's transaction.
    Adding an address twice is a no-op. Raises RegistryError for an unknown artifact."""
    artifact(artifact_name)
    address = to_checksum_address(address)
    exists = session.scalar(
        select(WatchedContract.id).where(
            WatchedContract.chain_id == chain_id, WatchedContract.address == address
        )
    )
    if exists is None:
        session.add(
            WatchedContract(
                chain_id=chain_id,
                key=key,
                artifact=artifact_name,
                address=address,
                from_block=from_block,
                synced_to=from_block - 1,
                source="runtime",
            )
        )
        session.flush()


def pending_events(
    session: Session, chain_id: int, *, contract_address: str | None = None
) -> list[ChainEvent]:
    """Logs seen above head - confirmations at the last pass (confirmed=False)."""
    q = select(PendingEventRecord).where(PendingEventRecord.chain_id == chain_id)
    if contract_address:
        q = q.where(PendingEventRecord.contract_address == to_checksum_address(contract_address))
    rows = session.scalars(
        q.order_by(PendingEventRecord.block_number, PendingEventRecord.log_index)
    )
    names = _artifact_by_address(session, chain_id)
    return [_event_from_row(r, names, confirmed=False) for r in rows]


def _artifact_by_address(session: Session, chain_id: int) -> dict[str, str]:
    rows = session.execute(
        select(WatchedContract.address, WatchedContract.artifact).where(
            WatchedContract.chain_id == chain_id
        )
    )
    return {a: n for a, n in rows}


def _event_from_row(
    r: ChainEventRecord | PendingEventRecord,
    names: dict[str, str],
    confirmed: bool = True,
    block_time: int | None = None,
) -> ChainEvent:
    return ChainEvent(
        chain_id=r.chain_id,
        contract_key=r.contract_key,
        contract_address=r.contract_address,
        contract_name=names.get(r.contract_address, ""),
        event_name=r.event_name,
        args=dict(r.args),
        block_number=r.block_number,
        block_hash=r.block_hash,
        tx_hash=r.tx_hash,
        log_index=r.log_index,
        confirmed=confirmed,
        block_time=block_time,
    )


def _run_handlers(session: Session, events: Sequence[ChainEvent], *, revert: bool) -> None:
    handlers = list(reversed(_HANDLERS)) if revert else list(_HANDLERS)
    for h in handlers:
        mine = [ev for ev in events if h.matches(ev)]
        if mine:
            (h.revert if revert else h.apply)(session, mine)


def _set_subjects(session: Session, events: Sequence[ChainEvent]) -> None:
    """Set each event's subject: tx hash -> OutboxAttempt -> OutboxTx (subject_kind, subject_id),
    one query per 500 transaction hashes."""
    hashes = sorted({ev.tx_hash for ev in events})
    found: dict[str, EventSubject] = {}
    for i in range(0, len(hashes), 500):
        rows = session.execute(
            select(OutboxAttempt.tx_hash, OutboxTx.subject_kind, OutboxTx.subject_id)
            .join(OutboxTx, OutboxTx.id == OutboxAttempt.tx_id)
            .where(
                OutboxAttempt.tx_hash.in_(hashes[i : i + 500]),
                OutboxTx.subject_kind.is_not(None),
                OutboxTx.subject_id.is_not(None),
            )
        )
        for tx_hash, kind, subject_id in rows:
            if kind is not None and subject_id is not None:  # the query's WHERE, for mypy
                found[tx_hash] = EventSubject(kind, subject_id)
    for ev in events:
        subject = found.get(ev.tx_hash)
        if subject is not None:
            object.__setattr__(ev, "subject", subject)  # frozen dataclass
