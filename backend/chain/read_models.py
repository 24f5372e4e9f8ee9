"""Read models over the chain's own tables, for domains (through backend.chain.api).

Domains never query `OutboxTx`, `OutboxAttempt`, `OutboxAlert`, `TokenBalance`, `TokenOwner`,
`ChainEventRecord` or `WatchedContract` themselves: the shape of those tables is the chain
package's business. These functions answer the questions domains ask, with plain values, in
the caller's session (so they see the caller's uncommitted rows and its transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from backend.chain.indexer_models import (
    ChainEventRecord,
    TokenBalance,
    TokenOwner,
    VoteCheckpoint,
    WatchedContract,
)
from backend.chain.outbox_models import OutboxAlert, OutboxAttempt, OutboxTx
from backend.chain.registry import artifact
from backend.core.db import utcnow

_ZERO = "0x" + "00" * 20

# ---------------------------------------------------------------- projections (balances, owners)


def balance_of(session: Session, chain_id: int, contract: str, holder: str) -> int:
    """The indexed (confirmed) ERC-20 balance of `holder` (0 for an unknown holder)."""
    amount = session.scalar(
        select(TokenBalance.amount).where(
            TokenBalance.chain_id == chain_id,
            TokenBalance.contract_address == contract,
            TokenBalance.holder == holder,
        )
    )
    return int(amount or 0)


def owner_of(session: Session, contract: str, token_id: int) -> str | None:
    """The indexed owner of an ERC-721 token of `contract` (None: not minted or burned)."""
    owner = session.scalar(
        select(TokenOwner.owner).where(
            TokenOwner.contract_address == contract, TokenOwner.token_id == token_id
        )
    )
    return None if owner is None else str(owner)


def owner_by_key(session: Session, key: str, token_id: int) -> str | None:
    """The indexed owner of token `token_id` of the watched contract `key` (e.g.
    "towns.<slug>.ResidentPass"; the first one found if several chains watch that key)."""
    owner = session.scalar(
        select(TokenOwner.owner)
        .join(
            WatchedContract,
            (WatchedContract.chain_id == TokenOwner.chain_id)
            & (WatchedContract.address == TokenOwner.contract_address),
        )
        .where(WatchedContract.key == key, TokenOwner.token_id == token_id)
        .limit(1)
    )
    return None if owner is None else str(owner)


@dataclass(frozen=True)
class OwnedToken:
    contract_address: str
    token_id: int
    owner: str


def tokens_owned_by(session: Session, owners: Collection[str]) -> list[OwnedToken]:
    """The indexed ERC-721 tokens (of any contract) that `owners` hold, by contract, then token."""
    if not owners:
        return []
    rows = session.execute(
        select(TokenOwner.contract_address, TokenOwner.token_id, TokenOwner.owner)
        .where(TokenOwner.owner.in_(list(owners)))
        .order_by(TokenOwner.contract_address, TokenOwner.token_id)
    )
    return [OwnedToken(str(c), int(t), str(o)) for c, t, o in rows]


def nft_holders_at(session: Session, chain_id: int, key: str, block_number: int) -> set[str]:
    """Who held a token of the ERC-721 contract watched under `key` at the end of block
    `block_number`: the indexed owners, with the indexed Transfers after that block undone
    (newest first). The same answer however late it is asked (an empty set for an unknown key)."""
    address = watched_address(session, chain_id, key)
    if address is None:
        return set()
    owners = {
        int(t): str(o)
        for t, o in session.execute(
            select(TokenOwner.token_id, TokenOwner.owner).where(
                TokenOwner.chain_id == chain_id, TokenOwner.contract_address == address
            )
        )
    }
    later = session.scalars(
        select(ChainEventRecord.args)
        .where(
            ChainEventRecord.chain_id == chain_id,
            ChainEventRecord.block_number > block_number,
            ChainEventRecord.contract_address == address,
            ChainEventRecord.event_name == "Transfer",
        )
        .order_by(ChainEventRecord.block_number.desc(), ChainEventRecord.log_index.desc())
    )
    for args in later:
        token, sender = int(args["tokenId"]), str(args["from"])
        if sender == _ZERO:
            owners.pop(token, None)  # minted after the block
        else:
            owners[token] = sender
    return set(owners.values()) - {_ZERO}


def watched_address(session: Session, chain_id: int, key: str) -> str | None:
    """The address the indexer watches under `key` (a deployments key or a runtime key)."""
    address = session.scalar(
        select(WatchedContract.address).where(
            WatchedContract.chain_id == chain_id, WatchedContract.key == key
        )
    )
    return None if address is None else str(address)


def votes_of(
    session: Session, chain_id: int, contract: str, account: str, at_block: int | None = None
) -> int:
    """The indexed votes of delegate `account` on the ERC-5805 token `contract` (checksummed
    addresses, as the indexer stores them): at the end of block `at_block` (`getPastVotes`), or
    the newest (`getVotes` as far as the indexer has seen). 0 before any checkpoint."""
    q = select(VoteCheckpoint.votes).where(
        VoteCheckpoint.chain_id == chain_id,
        VoteCheckpoint.contract_address == contract,
        VoteCheckpoint.account == account,
    )
    if at_block is not None:
        q = q.where(VoteCheckpoint.block_number <= at_block)
    votes = session.scalar(q.order_by(VoteCheckpoint.block_number.desc()).limit(1))
    return int(votes or 0)


# ---------------------------------------------------------------- indexed events


@dataclass(frozen=True)
class IndexedEvent:
    """A confirmed, indexed log as stored (args as JSON: ints above 2^53 may be strings)."""

    event_name: str
    args: dict[str, Any]
    tx_hash: str
    block_number: int
    log_index: int
    contract_address: str


def indexed_events(
    session: Session,
    chain_id: int,
    contract: str,
    names: Iterable[str],
    *,
    tx_hashes: Iterable[str] | None = None,
    to_block: int | None = None,
) -> list[IndexedEvent]:
    """Confirmed events `names` of `contract` in chain order; only those of `tx_hashes` and up
    to block `to_block` (inclusive) when given."""
    q = select(
        ChainEventRecord.event_name,
        ChainEventRecord.args,
        ChainEventRecord.tx_hash,
        ChainEventRecord.block_number,
        ChainEventRecord.log_index,
        ChainEventRecord.contract_address,
    ).where(
        ChainEventRecord.chain_id == chain_id,
        ChainEventRecord.contract_address == contract,
        ChainEventRecord.event_name.in_(list(names)),
    )
    if tx_hashes is not None:
        q = q.where(ChainEventRecord.tx_hash.in_(list(tx_hashes)))
    if to_block is not None:
        q = q.where(ChainEventRecord.block_number <= to_block)
    rows = session.execute(q.order_by(ChainEventRecord.block_number, ChainEventRecord.log_index))
    return [IndexedEvent(*row) for row in rows]


def events_of_tx(session: Session, tx_hash: str, event_name: str) -> list[IndexedEvent]:
    """The confirmed events `event_name` of transaction `tx_hash` (any contract), in log order."""
    rows = session.execute(
        select(
            ChainEventRecord.event_name,
            ChainEventRecord.args,
            ChainEventRecord.tx_hash,
            ChainEventRecord.block_number,
            ChainEventRecord.log_index,
            ChainEventRecord.contract_address,
        )
        .where(ChainEventRecord.tx_hash == tx_hash, ChainEventRecord.event_name == event_name)
        .order_by(ChainEventRecord.block_number, ChainEventRecord.log_index)
    )
    return [IndexedEvent(*row) for row in rows]


# ---------------------------------------------------------------- what the platform sent


@dataclass(frozen=True)
class SentCall:
    """A contract call the platform queued (an outbox row), as domains may read it."""

    id: int
    function: str
    args: dict[str, Any]  # by the ABI's parameter names, e.g. {"to": ..., "amount": ...}
    user_address: str | None
    created_at: dt.datetime
    tx_hashes: frozenset[str]  # every attempt's hash


def _named(artifact_name: str, function: str, args: list[Any]) -> dict[str, Any]:
    """`args` of `function` by the names of its parameters in the artifact's ABI (the overload
    with as many parameters; positional names "0", "1", ... if the ABI has none)."""
    for item in artifact(artifact_name).abi:
        if (
            item.get("type") == "function"
            and item.get("name") == function
            and len(item.get("inputs", [])) == len(args)
        ):
            params = item["inputs"]
            return {
                p.get("name") or str(i): a
                for i, (p, a) in enumerate(zip(params, args, strict=True))
            }
    return {str(i): a for i, a in enumerate(args)}


def sent_calls(
    session: Session, contract: str, artifact_name: str, states: Iterable[str], since: dt.datetime
) -> list[SentCall]:
    """Calls to `contract` (ABI `artifact_name`) queued since `since` whose outbox state is one
    of `states`, their arguments named by the ABI."""
    rows = session.scalars(
        select(OutboxTx).where(
            OutboxTx.contract == contract,
            OutboxTx.state.in_(list(states)),
            OutboxTx.created_at >= since,
        )
    ).all()
    return [
        SentCall(
            tx.id,
            tx.function,
            _named(artifact_name, tx.function, list(tx.args or ())),
            tx.user_address,
            tx.created_at,
            frozenset(a.tx_hash for a in tx.attempts),
        )
        for tx in rows
    ]


def outbox_ids(session: Session, tx_hashes: Iterable[str]) -> dict[str, int]:
    """The outbox row behind each mined transaction hash the platform sent (any attempt)."""
    hashes = sorted(set(tx_hashes))
    if not hashes:
        return {}
    rows = session.execute(
        select(OutboxAttempt.tx_hash, OutboxAttempt.tx_id).where(OutboxAttempt.tx_hash.in_(hashes))
    )
    return {h: i for h, i in rows}


def outbox_tx_for(session: Session, tx_hash: str) -> OutboxTx | None:
    """The outbox row whose latest transaction hash is `tx_hash` (case-insensitive)."""
    return session.scalars(
        select(OutboxTx).where(func.lower(OutboxTx.tx_hash) == tx_hash.lower())
    ).first()


@dataclass(frozen=True)
class OutboxState:
    state: str
    error: str | None


def outbox_states(
    session: Session, ids: Iterable[int], *, only: Iterable[str] | None = None
) -> dict[int, OutboxState]:
    """The outbox state (and error) of each row of `ids`; only rows in states `only` if given."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    q = select(OutboxTx.id, OutboxTx.state, OutboxTx.error).where(OutboxTx.id.in_(wanted))
    if only is not None:
        q = q.where(OutboxTx.state.in_(list(only)))
    return {i: OutboxState(s, e) for i, s, e in session.execute(q)}


@dataclass(frozen=True)
class SubjectCall:
    """One call the platform queued for a business row, in the order it was queued."""

    id: int
    function: str
    state: str
    error: str | None
    tx_hash: str | None


def calls_of_subject(session: Session, kind: str, subject_id: int) -> list[SubjectCall]:
    """Every outbox call queued with Subject(kind, subject_id), oldest first, with its state."""
    rows = session.execute(
        select(OutboxTx.id, OutboxTx.function, OutboxTx.state, OutboxTx.error, OutboxTx.tx_hash)
        .where(OutboxTx.subject_kind == kind, OutboxTx.subject_id == subject_id)
        .order_by(OutboxTx.id)
    )
    return [SubjectCall(i, f, s, e, h) for i, f, s, e, h in rows]


def outbox_state_in(outbox_tx_id: Any, states: Iterable[str]) -> ColumnElement[bool]:
    """A SQL condition for a domain's query: the outbox row `outbox_tx_id` (a column holding
    an outbox id) is in one of `states` (false for NULL)."""
    return cast(
        "ColumnElement[bool]",
        outbox_tx_id.in_(select(OutboxTx.id).where(OutboxTx.state.in_(list(states)))),
    )


def outbox_state(session: Session, outbox_tx_id: int) -> str | None:
    """The outbox state of one row (None: no such row)."""
    state = session.scalar(select(OutboxTx.state).where(OutboxTx.id == outbox_tx_id))
    return None if state is None else str(state)


def outbox_tx(session: Session, outbox_tx_id: int | None) -> OutboxTx | None:
    """One outbox row by id (None for None or an unknown id)."""
    return session.get(OutboxTx, outbox_tx_id) if outbox_tx_id else None


# ---------------------------------------------------------------- operator alerts


def _open_alert(session: Session, kind: str, subject: str) -> OutboxAlert | None:
    return session.scalar(
        select(OutboxAlert).where(
            OutboxAlert.kind == kind,
            OutboxAlert.subject == subject,
            OutboxAlert.resolved_at.is_(None),
        )
    )


def alert_open(session: Session, kind: str, subject: str) -> bool:
    return _open_alert(session, kind, subject) is not None


def raise_alert(session: Session, kind: str, subject: str, message: str) -> bool:
    """Open an operator alert unless one of that kind and subject is open; True if opened."""
    if _open_alert(session, kind, subject) is not None:
        return False
    session.add(OutboxAlert(kind=kind, subject=subject, message=message))
    return True


def resolve_alert(session: Session, kind: str, subject: str) -> bool:
    """Resolve the open alert of that kind and subject; True if there was one."""
    alert = _open_alert(session, kind, subject)
    if alert is None:
        return False
    alert.resolved_at = utcnow()
    return True
