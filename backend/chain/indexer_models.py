"""Tables of the chain indexer: events stored once, blocks seen, cursors, watched contracts, the
generic ERC-20/ERC-721 projection and reconciliation reports.

Every table is keyed by chain id, so one database can follow several chains.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


_PROGRAMME_SET = text("event_name = 'ProgrammeSet'")


class Hash32(TypeDecorator[str]):
    """A 32-byte hash stored as its 32 bytes (bytea, BLOB) and seen in Python as 0x-hex (lower
    case), as nodes write it.

    For transaction hashes of events: the UNIQUE (chain_id, tx_hash, log_index) index takes a
    random place for every stored log, and with 32-byte keys instead of 66-character strings it
    is half the size and compares bytes, not collated text (docs/benchmarks-indexer.md). COPY
    writes the value as COPY_PREFIX + hex. A bound value that is not 32 bytes of hex is refused
    before it reaches the database."""

    impl = LargeBinary
    cache_ok = True
    # Two backslashes and an x: COPY's text format reads them as one backslash and the x,
    # which starts bytea's hex input.
    COPY_PREFIX = "\\\\x"

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        raw = bytes.fromhex(value.removeprefix("0x"))
        if len(raw) != 32:
            raise ValueError(f"not a 32-byte hash: {value!r}")
        return raw

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else "0x" + bytes(value).hex()


class ChainEventRecord(Base):
    """One confirmed log, stored once: UNIQUE (chain_id, tx_hash, log_index), as the issue asks.

    The primary key is (chain_id, block_number, log_index): a log's `logIndex` is its position in
    its block, so it names one log of the chain too, and rows above the common ancestor are
    deleted before a new branch is indexed (ADR 0004). Its keys arrive in order while indexing,
    which makes it cheap, and it serves the reorg rollback and chain-order reads; there is no
    surrogate id (migration 0015).

    Secondary indexes cost every inserted row, so there are only those a query needs: the
    UNIQUE above (a transaction's events are looked up by tx_hash) and the points handler's
    `_expiry_days` (backend/points/handlers.py), which reads ProgrammeSet events by contract and
    block: a partial index that Transfers do not pay for. Measured COPY cost per index is in
    docs/benchmarks-indexer.md.
    """

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        Index(
            "ix_chain_events_programme_set",
            "chain_id",
            "contract_address",
            "block_number",
            postgresql_where=_PROGRAMME_SET,
            sqlite_where=_PROGRAMME_SET,
        ),
    )

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    contract_key: Mapped[str] = mapped_column(String(120))
    contract_address: Mapped[str] = mapped_column(String(42))
    event_name: Mapped[str] = mapped_column(String(80))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    block_hash: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(Hash32)


class PendingEventRecord(Base):
    """Logs above head - confirmations, replaced on every indexer pass (shown as "pending")."""

    __tablename__ = "chain_pending_events"
    __table_args__ = (UniqueConstraint("chain_id", "tx_hash", "log_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, index=True)
    contract_key: Mapped[str] = mapped_column(String(120))
    contract_address: Mapped[str] = mapped_column(String(42))
    event_name: Mapped[str] = mapped_column(String(80))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(Hash32)
    log_index: Mapped[int] = mapped_column(Integer)


class ChainBlock(Base):
    """A block the indexer relied on (one holding events, or the end of a chunk)."""

    __tablename__ = "chain_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    # The header's timestamp (Unix seconds) when the indexer read the header (blocks of events
    # that reached a domain handler, chunk ends), else None; events rebuilt for a reorg's
    # revert carry it as block_time.
    block_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ChainCursor(Base):
    """Per chain: how far every watched contract is indexed, and the indexer's lock.

    On PostgreSQL the lock is this row, taken with SELECT ... FOR UPDATE SKIP LOCKED for the
    length of one chunk's transaction (a killed worker's lock goes with its connection). SQLite
    has no row locks: there `locked_by`/`locked_until` form a lease that expires.
    """

    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, default=-1)
    head_block: Mapped[int] = mapped_column(BigInteger, default=-1)
    reorgs: Mapped[int] = mapped_column(Integer, default=0)
    locked_by: Mapped[str | None] = mapped_column(String(120))
    locked_until: Mapped[dt.datetime | None] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WatchedContract(Base):
    """A contract whose logs are indexed: every deployments-file entry plus runtime additions
    (e.g. a collection created by a factory). `synced_to` is the last block indexed for it."""

    __tablename__ = "watched_contracts"
    __table_args__ = (UniqueConstraint("chain_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(120))
    artifact: Mapped[str] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(42))
    from_block: Mapped[int] = mapped_column(BigInteger)
    synced_to: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(20), default="runtime")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TokenBalance(Base):
    """ERC-20 balance projected from confirmed Transfer events."""

    __tablename__ = "chain_token_balances"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    holder: Mapped[str] = mapped_column(String(42), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(TokenAmount)


class TokenOwner(Base):
    """ERC-721 ownership projected from confirmed Transfer events."""

    __tablename__ = "chain_token_owners"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    token_id: Mapped[Decimal] = mapped_column(TokenAmount, primary_key=True)
    owner: Mapped[str] = mapped_column(String(42), index=True)


class VoteCheckpoint(Base):
    """An ERC-5805 delegate's votes from a block on, projected from confirmed
    DelegateVotesChanged events (the event's `newVotes`; the last one of the block wins), as
    the token's own checkpoints hold them: `getVotes` is the newest row, `getPastVotes(b)` the
    newest row at or below block b. Governance pages read votes from here, not from the node."""

    __tablename__ = "chain_vote_checkpoints"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contract_address: Mapped[str] = mapped_column(String(42), primary_key=True)
    account: Mapped[str] = mapped_column(String(42), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    votes: Mapped[Decimal] = mapped_column(TokenAmount)


class ReconciliationReport(Base):
    """One comparison of the SQL projection with chain reads; `differences` lists each one."""

    __tablename__ = "chain_reconciliation_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    checked: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column()
    differences: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
