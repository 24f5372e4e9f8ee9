"""The Indexer: one chain into one database, chunk by chunk, one transaction per step, and
its reorg handling (the package docstring and docs/adr/0004-indexer-reorgs.md explain how)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from backend.chain.indexer.decoding import _checksum, _Contract, _gc_paused, decode_logs
from backend.chain.indexer.events import (
    _HANDLERS,
    _artifact_by_address,
    _event_from_row,
    _run_handlers,
    _set_subjects,
)
from backend.chain.indexer.prefetch import _FETCH_ERRORS, _Fetched, _Plan, _Prefetcher
from backend.chain.indexer.storage import (
    _can_copy,
    _ChunkDecoder,
    _copy_in,
    _ReorgDuringFetch,
    _upsert,
    store_events,
)
from backend.chain.indexer_models import (
    ChainBlock,
    ChainCursor,
    ChainEventRecord,
    PendingEventRecord,
    WatchedContract,
)
from backend.chain.registry import RegistryError, load_deployments
from backend.chain.rpc import JsonRpc

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the indexer


@dataclass
class IndexResult:
    chain_id: int
    head: int = -1
    target: int = -1
    cursor: int = -1
    events: int = 0
    chunks: int = 0
    reorgs: int = 0
    rolled_back_events: int = 0
    pending: int = 0
    busy: bool = False
    caught_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Chunk:
    """What the chunks of one transaction share: the decoder (its handler state and counts),
    the open COPY (PostgreSQL), the block rows to store, and the `known` block (number, hash)
    the next chunk continues from: the highest stored block, checked at the start of the
    transaction, then each chunk's last block, which the next chunk reads again (it is the
    block before its first, one of _after_numbers)."""

    dec: _ChunkDecoder
    known: tuple[int, str] | None = None
    write: Callable[[str], None] | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Indexer:
    """Indexes one chain into one database. Safe to run from several workers at once."""

    engine: Engine
    rpc: JsonRpc
    deployments_dir: Path | None = None
    confirmations: int = 2
    chunk_size: int = 2000
    # A transaction takes further chunks (one eth_getLogs of `chunk_size` blocks each) until
    # it holds this many events: node limits size the requests, this the commits (each costs
    # the lock, reorg check, upserts and commit once).
    batch_events: int = 10_000
    lease_seconds: int = 120
    process: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    @property
    def _pg(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # -- setup

    def _deployed(self) -> list[dict[str, Any]]:
        """The watched_contracts rows of the deployments file's contracts (read once per run;
        the steps insert those missing, so a run on a database that watches them all writes
        nothing for them)."""
        if self.deployments_dir is None:
            return []
        try:
            deployments = load_deployments(self.deployments_dir, self.chain_id)
        except RegistryError:
            log.warning(
                "chain %s: no deployments file, indexing runtime contracts only", self.chain_id
            )
            return []
        return [
            {
                "chain_id": self.chain_id,
                "key": c.key,
                "artifact": c.contract,
                "address": _checksum(c.address),
                "from_block": c.block_number,
                "synced_to": c.block_number - 1,
                "source": "deployments",
                "created_at": dt.datetime.now(dt.UTC),
            }
            for c in deployments.contracts.values()
        ]

    # -- locking

    @property
    def owner(self) -> str:
        """The SQLite lease's holder: the thread running the pass, in this process (a worker's
        block watcher and a task in the same process are two holders, not one re-entering)."""
        return f"{self.process}:{threading.get_ident()}"

    def _lock(self, s: Session) -> ChainCursor | None:
        """The chain's cursor, locked for this transaction (created on a fresh database), or
        None when another indexer holds it."""
        cursor = self._try_lock(s)
        if cursor is None and s.get(ChainCursor, self.chain_id) is None:
            _upsert(
                s, ChainCursor, [{"chain_id": self.chain_id, "block_number": -1}], ["chain_id"], []
            )
            cursor = self._try_lock(s)
        return cursor

    def _try_lock(self, s: Session) -> ChainCursor | None:
        q = select(ChainCursor).where(ChainCursor.chain_id == self.chain_id)
        if self._pg:
            return s.scalars(q.with_for_update(skip_locked=True)).first()
        now = dt.datetime.now(dt.UTC)
        got = s.execute(
            update(ChainCursor)
            .where(
                ChainCursor.chain_id == self.chain_id,
                (ChainCursor.locked_by.is_(None))
                | (ChainCursor.locked_by == self.owner)
                | (ChainCursor.locked_until < now),
            )
            .values(
                locked_by=self.owner, locked_until=now + dt.timedelta(seconds=self.lease_seconds)
            )
        )
        return s.scalars(q).first() if got.rowcount else None  # type: ignore[attr-defined]

    def _release(self) -> None:
        if self._pg:
            return
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(ChainCursor)
                .where(ChainCursor.chain_id == self.chain_id, ChainCursor.locked_by == self.owner)
                .values(locked_by=None, locked_until=None)
            )

    # -- the pass

    def run(
        self, *, max_seconds: float | None = None, max_chunks: int | None = None
    ) -> IndexResult:
        """Index until caught up with head - confirmations (or a budget runs out), then refresh
        the pending events. Raises ChainUnavailable when the node does not answer."""
        deployed = self._deployed()
        result = IndexResult(chain_id=self.chain_id)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        prefetcher = _Prefetcher(self.rpc)
        failures: list[Exception] = []  # the pending events' fetch, raised once committed
        try:
            while True:
                if max_chunks is not None and result.chunks >= max_chunks:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    step = self._step(
                        result,
                        prefetcher,
                        failures,
                        deployed,
                        max_chunks=max_chunks,
                        deadline=deadline,
                    )
                except _ReorgDuringFetch:
                    prefetcher.drop()
                    continue  # the next step finds the new branch
                if step == "busy":
                    result.busy = True
                    return result
                if failures:
                    raise failures[0]
                if step == "done":  # the pending events were refreshed in that step
                    result.caught_up = True
                    break
        finally:
            prefetcher.drop()
            self._release()
        return result

    def _plan(self, synced: dict[str, int], target: int) -> _Plan | None:
        """The next chunk: the contracts furthest behind (`synced`: address -> synced_to), from
        their next block to the chunk size, the target or the next contract's cursor, whichever
        comes first."""
        behind = [n for n in synced.values() if n < target]
        if not behind:
            return None
        low = min(behind)
        frm = low + 1
        to = min(frm + self.chunk_size - 1, target)
        higher = [n for n in synced.values() if n > low]
        if higher:
            to = min(to, min(higher))
        return tuple(sorted(a for a, n in synced.items() if n == low)), frm, to

    def _upcoming(self, synced: dict[str, int], target: int, n: int) -> list[_Plan]:
        """The next `n` chunks, each planned as if the ones before it commit."""
        synced, out = dict(synced), list[_Plan]()
        while len(out) < n and (plan := self._plan(synced, target)) is not None:
            out.append(plan)
            for a in plan[0]:
                synced[a] = plan[2]
        return out

    def _step(
        self,
        result: IndexResult,
        prefetcher: _Prefetcher,
        failures: list[Exception],
        deployed: list[dict[str, Any]],
        *,
        max_chunks: int | None = None,
        deadline: float | None = None,
    ) -> str:
        """One transaction: the reorg check, then chunks (one eth_getLogs each) of the same
        contracts until `batch_events` events, the chunk or time budget, or the target; caught
        up, the pending events (a failure to fetch them goes in `failures`, and what the step
        indexed is committed all the same)."""
        with _gc_paused(), Session(self.engine, expire_on_commit=False) as s, s.begin():
            cursor = self._lock(s)
            if cursor is None:
                return "busy"
            top = s.scalars(
                select(ChainBlock)
                .where(ChainBlock.chain_id == self.chain_id)
                .order_by(ChainBlock.number.desc())
                .limit(1)
            ).first()
            # The head and the highest stored block's header in one round trip.
            calls: list[tuple[str, list[Any]]] = [("eth_blockNumber", [])]
            if top is not None:
                calls.append(("eth_getBlockByNumber", [hex(top.number), False]))
            answers = self.rpc.batch(calls)
            head = int(answers[0], 16)
            target = head - self.confirmations
            result.head, result.target = head, target
            ancestor = None if top is None else self._find_reorg(s, top, answers[1])
            if ancestor is not None:
                self._rollback_to(s, ancestor, result)
                cursor.reorgs += 1
                return "reorg"
            watched = self._watched(s)
            missing = [row for row in deployed if row["address"] not in watched]
            if missing:  # a fresh database, or contracts deployed since
                _upsert(s, WatchedContract, missing, ["chain_id", "address"], [])
                watched = self._watched(s)
            synced = {a: w.synced_to for a, w in watched.items()}
            plan = self._plan(synced, target)
            if plan is None:
                self._save_cursor(cursor, synced, head)
                self._refresh_pending(s, watched.values(), result, failures)
                return "done"
            if self._pg:
                # A chunk's commit need not wait for its WAL flush: see ADR 0004 ("Durability").
                s.execute(text("SET LOCAL synchronous_commit = off"))
            addresses, frm, to = plan
            copy = _can_copy(s)
            # The decoder knows every watched contract, so one transaction can take chunks of
            # several contract groups: on a fresh database, contracts deployed at different
            # blocks join the catch-up one group at a time (each group's chunk ends at the next
            # contract's first block), and a transaction per group cost a lock, a reorg check,
            # the upserts and a commit each (30 for the two demo towns' 146 deploy blocks).
            chunk = _Chunk(
                _ChunkDecoder(
                    self.chain_id,
                    self._contracts(watched.values()),
                    list(_HANDLERS),
                    keep_events=not copy,
                ),
                known=None if top is None else (top.number, top.hash),
            )
            chunks = 0
            with ExitStack() as copying:
                if copy:
                    chunk.write = copying.enter_context(_copy_in(s, ChainEventRecord))
                while True:
                    # This chunk and the next two (each as if the ones before it commit) are
                    # requested ahead unless they already are: the node computes them while this
                    # process decodes and writes; whoever takes one checks that it is still the
                    # right one. Not past the run's chunk budget.
                    left = 3 if max_chunks is None else max_chunks - result.chunks - chunks
                    prefetcher.ensure(self._upcoming(synced, target, min(3, left)))
                    fetched = prefetcher.take(addresses, frm, to)
                    to = fetched.to
                    for a in addresses:
                        synced[a] = watched[a].synced_to = to
                    chunks += 1
                    self._index_chunk(s, chunk, fetched, prefetcher)
                    # Its parsed logs are freed now, while PostgreSQL works through the COPY,
                    # not after it (~2 ms per 1,000 logs, measured).
                    del fetched
                    following = self._plan(synced, target)
                    if (
                        following is None
                        or chunk.dec.count >= self.batch_events
                        or (max_chunks is not None and result.chunks + chunks >= max_chunks)
                        or (deadline is not None and time.monotonic() > deadline)
                    ):
                        break
                    # Plans are contiguous: the next one starts at this chunk's last block
                    # + 1, whichever contracts it takes (chunk.known still holds).
                    addresses, frm, to = following
            _upsert(
                s,
                ChainBlock,
                chunk.blocks,
                ["chain_id", "number"],
                ["hash", "parent_hash", "block_time"],
            )
            # Now that the COPY is closed (a query during it would wait for its connection):
            # the business rows behind the handlers' events, in one query per 500 tx hashes.
            _set_subjects(s, chunk.dec.for_handlers)
            chunk.dec.run_handlers(s)
            self._save_cursor(cursor, synced, head)
            result.events += chunk.dec.count
            result.chunks += chunks
            result.cursor = cursor.block_number
            if following is not None:
                return "chunk"
            # Caught up with this step's target: no further step needed to find that out, and
            # the pending events are refreshed in this transaction (no second lock and commit).
            self._refresh_pending(s, watched.values(), result, failures)
            return "done"

    def _watched(self, s: Session) -> dict[str, WatchedContract]:
        q = select(WatchedContract).where(WatchedContract.chain_id == self.chain_id)
        return {w.address: w for w in s.scalars(q)}

    def _save_cursor(self, cursor: ChainCursor, synced: dict[str, int], head: int) -> None:
        cursor.block_number = min(synced.values(), default=-1)
        cursor.head_block = head
        cursor.updated_at = dt.datetime.now(dt.UTC)

    def _contracts(self, watched: Iterable[WatchedContract]) -> dict[str, _Contract]:
        return {w.address.lower(): _Contract(w.key, w.artifact, w.address) for w in watched}

    def _index_chunk(
        self, s: Session, chunk: _Chunk, fetched: _Fetched, prefetcher: _Prefetcher
    ) -> None:
        """Decode and write one fetched chunk and check it against the chain's headers, all
        read after its logs (fetched.headers, and here any other this chunk needs)."""
        to = fetched.to
        headers = dict(fetched.headers)
        dec = chunk.dec
        dec.blocks = {}
        if chunk.write is not None:
            # Decoded and written in slices, so PostgreSQL parses and indexes one slice while
            # Python decodes the next. Nothing is visible before the commit, and the checks
            # below roll the whole transaction back.
            for i in range(0, len(fetched.logs), 1000):
                chunk.write(dec.feed(fetched.logs[i : i + 1000]))
            prefetcher.receive()  # while PostgreSQL catches up with the COPY
        else:
            dec.feed(fetched.logs)
            store_events(s, ChainEventRecord, dec.events or [])
            dec.events = []
        # The last block has kept its hash since before the fetch, and each log's block is the
        # chain's block: the logs are one consistent view of the chain.
        tip = headers[to]
        if fetched.before is None or tip is None or fetched.before["hash"] != tip["hash"]:
            raise _ReorgDuringFetch(f"block {to} changed while fetching logs")
        # Parent hashes (ADR 0004, "Parent hashes from the logs"): a block's parent is the hash
        # its predecessor has in these logs, else the known block's, else that of a header read
        # after the logs; a block with logs whose predecessor has none of these is read itself
        # (its header names its parent).
        hashes = dict(dec.blocks)
        if chunk.known is not None:
            hashes.setdefault(*chunk.known)
        for number, hdr in headers.items():
            if hdr is not None:
                hashes.setdefault(number, hdr["hash"])
        # The blocks of events for handlers are read too (in the same batch), for their
        # block_time: a handler never asks the node for it inside this transaction.
        timed = {ev.block_number for ev in dec.untimed}
        missing = sorted(({n for n in dec.blocks if n - 1 not in hashes} | timed) - headers.keys())
        if missing:
            headers.update(zip(missing, self.rpc.headers(missing), strict=True))
        if chunk.known is not None and chunk.known[0] in headers:
            # Read after the logs (always, when the chunk continues the known block): the chain
            # still has the block this chunk continues from.
            number, known_hash = chunk.known
            hdr = headers[number]
            if hdr is None or hdr["hash"] != known_hash:
                raise _ReorgDuringFetch(f"block {number} changed while fetching logs")
        rows = chunk.blocks
        for number, block_hash in sorted(dec.blocks.items()):
            hdr = headers.get(number)
            if hdr is not None:
                # The chain's header (read after the logs) names the logs' hash, and its parent
                # is the hash the logs of the block below name, if any.
                parent = hdr["parentHash"]
                if hdr["hash"] != block_hash or hashes.get(number - 1, parent) != parent:
                    raise _ReorgDuringFetch(f"block {number} changed while fetching logs")
            elif number in headers:  # asked for and not there: the chain got shorter
                raise _ReorgDuringFetch(f"block {number} changed while fetching logs")
            else:
                parent = hashes[number - 1]
            rows.append(
                {
                    "chain_id": self.chain_id,
                    "number": number,
                    "hash": block_hash,
                    "parent_hash": parent,
                    "block_time": None if hdr is None else int(hdr["timestamp"], 16),
                }
            )
        if to not in dec.blocks:
            rows.append(
                {
                    "chain_id": self.chain_id,
                    "number": to,
                    "hash": tip["hash"],
                    "parent_hash": tip["parentHash"],
                    "block_time": int(tip["timestamp"], 16),
                }
            )
        elif tip["hash"] != dec.blocks[to]:
            raise _ReorgDuringFetch(f"block {to} changed while fetching logs")
        for ev in dec.untimed:  # each one's header was read and checked above
            hdr = headers[ev.block_number]
            assert hdr is not None
            object.__setattr__(ev, "block_time", int(hdr["timestamp"], 16))  # frozen dataclass
        dec.untimed = []
        # The next chunk of this transaction continues from this one's last block.
        chunk.known = (to, tip["hash"])

    # -- reorgs

    def _find_reorg(self, s: Session, top: ChainBlock, hdr: dict[str, Any] | None) -> int | None:
        """None when the highest stored block `top` is still on the chain (`hdr`: the chain's
        header at its height), else the common ancestor's number (-1 when no stored block
        survived)."""
        if hdr is not None and hdr["hash"] == top.hash:
            return None
        below = top.number + 1
        while True:
            rows = list(
                s.scalars(
                    select(ChainBlock)
                    .where(ChainBlock.chain_id == self.chain_id, ChainBlock.number < below)
                    .order_by(ChainBlock.number.desc())
                    .limit(64)
                )
            )
            if not rows:
                return -1
            for row, h in zip(rows, self.rpc.headers([r.number for r in rows]), strict=True):
                if h is not None and h["hash"] == row.hash:
                    return row.number
            below = rows[-1].number

    def _rollback_to(self, s: Session, ancestor: int, result: IndexResult) -> None:
        chain_id = self.chain_id
        rows = list(
            s.scalars(
                select(ChainEventRecord)
                .where(
                    ChainEventRecord.chain_id == chain_id,
                    ChainEventRecord.block_number > ancestor,
                )
                .order_by(ChainEventRecord.block_number.desc(), ChainEventRecord.log_index.desc())
            )
        )
        names = _artifact_by_address(s, chain_id)
        times: dict[int, int | None] = {
            number: t
            for number, t in s.execute(
                select(ChainBlock.number, ChainBlock.block_time).where(
                    ChainBlock.chain_id == chain_id, ChainBlock.number > ancestor
                )
            )
        }
        events = [_event_from_row(r, names, block_time=times.get(r.block_number)) for r in rows]
        _set_subjects(s, events)
        _run_handlers(s, events, revert=True)
        s.execute(
            delete(ChainEventRecord).where(
                ChainEventRecord.chain_id == chain_id, ChainEventRecord.block_number > ancestor
            )
        )
        s.execute(
            delete(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number > ancestor)
        )
        s.execute(delete(PendingEventRecord).where(PendingEventRecord.chain_id == chain_id))
        for w in self._watched(s).values():
            if w.synced_to > ancestor:
                w.synced_to = max(ancestor, w.from_block - 1)
        log.warning(
            "chain %s: reorg, rolled back %d events above block %d", chain_id, len(rows), ancestor
        )
        result.reorgs += 1
        result.rolled_back_events += len(rows)

    # -- pending

    def _refresh_pending(
        self,
        s: Session,
        watched: Iterable[WatchedContract],
        result: IndexResult,
        failures: list[Exception],
    ) -> None:
        """Replace the pending events (above the target, up to the head) of the contracts
        caught up with the target; in the caught-up step's transaction, under its lock. When
        the node does not answer, the pending events stay as they were and the error goes in
        `failures` (raised by run() once the step has committed)."""
        ready = [w for w in watched if w.synced_to >= result.target]
        logs: list[dict[str, Any]] = []
        if result.head > result.target and ready:
            try:
                logs = self.rpc.get_logs([w.address for w in ready], result.target + 1, result.head)
            except _FETCH_ERRORS as exc:
                failures.append(exc)
                return
        s.execute(delete(PendingEventRecord).where(PendingEventRecord.chain_id == self.chain_id))
        events = decode_logs(self.chain_id, logs, self._contracts(ready), confirmed=False)
        store_events(s, PendingEventRecord, events)
        result.pending = len(events)
