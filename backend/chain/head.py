"""What the indexer knows of the chain's head and clock, for pages that must not ask the node
(issue 16 §1): the block up to which given contracts are indexed, the times of the blocks it
stored, and the chain's clock as pages read it.

Read models over the indexer's own tables (domains reach them through backend.chain.api), in the
caller's session.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.chain.indexer_models import ChainBlock, WatchedContract


def newest_block_time(session: Session, chain_id: int) -> int | None:
    """The timestamp of the newest block the indexer stored a time for (None: none yet)."""
    stamp = session.scalar(
        select(ChainBlock.block_time)
        .where(ChainBlock.chain_id == chain_id, ChainBlock.block_time.is_not(None))
        .order_by(ChainBlock.number.desc())
        .limit(1)
    )
    return None if stamp is None else int(stamp)


def chain_clock(session: Session, chain_id: int, seen: int | None = None) -> int:
    """The chain's clock (Unix seconds) without asking the node: the later of the newest block
    time the indexer stored and `seen`, the chain's clock as this process last read it
    (`Web3Gateway.seen_chain_now`, moved on by the wall time since); this server's clock only
    when it knows neither. Not the wall clock otherwise: a chain's clock may run ahead of it (a
    test chain moved with evm_increaseTime) or behind it (a test chain reverted to a snapshot,
    a node that lags), and a page must agree with what the chain will check."""
    stamps = [s for s in (newest_block_time(session, chain_id), seen) if s is not None]
    return max(stamps) if stamps else int(time.time())


def synced_block(session: Session, chain_id: int, addresses: Iterable[str]) -> int | None:
    """The block up to which the events of every contract of `addresses` are indexed (the
    lowest of their cursors); None when one of them is not watched."""
    wanted = {a.lower() for a in addresses}
    if not wanted:
        return None
    rows = session.execute(
        select(WatchedContract.address, WatchedContract.synced_to).where(
            WatchedContract.chain_id == chain_id,
            func.lower(WatchedContract.address).in_(sorted(wanted)),
        )
    ).all()
    if {str(a).lower() for a, _ in rows} != wanted:
        return None
    return min(int(n) for _, n in rows)


@dataclass(frozen=True)
class IndexedHead:
    """A block the indexer reached and its time, with the pace of blocks before it."""

    number: int
    time: int | None  # the block's timestamp (the nearest stored time at or below it)
    seconds_per_block: float | None  # measured over stored blocks; None with fewer than two


def indexed_head(session: Session, chain_id: int, number: int, pace_blocks: int) -> IndexedHead:
    """Block `number` (e.g. a `synced_block`) with the time of the nearest block at or below it
    that the indexer stored a time for, and the pace of blocks measured from that block back to
    a stored one about `pace_blocks` lower (the lowest stored one when the chain is younger).
    Two queries on the stored blocks' primary key."""
    top = session.execute(
        select(ChainBlock.number, ChainBlock.block_time)
        .where(
            ChainBlock.chain_id == chain_id,
            ChainBlock.number <= number,
            ChainBlock.block_time.is_not(None),
        )
        .order_by(ChainBlock.number.desc())
        .limit(1)
    ).first()
    if top is None:
        return IndexedHead(number, None, None)
    top_number, top_time = int(top[0]), int(top[1] or 0)  # block_time IS NOT NULL above
    back_q = select(ChainBlock.number, ChainBlock.block_time).where(
        ChainBlock.chain_id == chain_id,
        ChainBlock.number < top_number,
        ChainBlock.block_time.is_not(None),
    )
    back = (
        session.execute(
            back_q.where(ChainBlock.number <= top_number - pace_blocks)
            .order_by(ChainBlock.number.desc())
            .limit(1)
        ).first()
        or session.execute(back_q.order_by(ChainBlock.number).limit(1)).first()
    )
    pace = None
    if back is not None:
        pace = (top_time - int(back[1] or 0)) / (top_number - int(back[0]))
    # The head itself may be past the stored block (a cursor moved on with no event to store).
    head_time = top_time + round((number - top_number) * (pace or 0))
    return IndexedHead(number, head_time, pace)
