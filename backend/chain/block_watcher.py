"""The block watcher: confirmations in seconds, not beat ticks (issue 16 §2).

A thread in every Celery worker process (`install(celery, flask_app)` in backend/worker.py adds
it as a worker bootstep, so `make run`'s solo worker and a server's workers both get it). Every
BLOCK_WATCH_INTERVAL seconds (0.25 by default; 0 turns it off and leaves the beat alone) it asks
the node for `eth_blockNumber` and:

- sends queued outbox rows at once (the request already published "chain.send_outbox", but the
  embedded broker picks a message up only once a second): between two looks at the head it
  looks for queued rows every QUEUE_POLL (0.1 s; one indexed query, no RPC call), so a
  payment leaves within ~0.1 s of its commit on `make run` too;
- on a new head (or a lower one: a reorg), indexes the chain up to head - confirmations, then
  settles the receipts of in-flight outbox rows. Paid charges and owned cards come from the
  indexer's handlers, so the indexer goes first.

No pile-up: the loop is one thread and does one thing at a time; a head seen while a pass runs
is handled by the next tick, however many blocks came meanwhile (one pass catches up with them
all). Only one pass of each kind runs at once, in the process and across processes: the indexer
takes the chain's cursor row (FOR UPDATE SKIP LOCKED on PostgreSQL, a lease per thread on
SQLite; another holder means "busy", tried again next tick); outbox work takes the process's
`OUTBOX_WORK` lock (the Celery tasks take it too) and, on PostgreSQL, row locks across workers
(the sender's row for sends, SKIP LOCKED in-flight rows for receipts). The beat's schedule stays
as it was: the fallback when this thread is off, behind, or the node was down.

A node that does not answer is logged once (not every tick) and asked again with a growing
interval (up to MAX_BACKOFF); when it answers again the watcher says so and catches up. Work
that failed (a database error, the node failing mid-pass) stays due, is logged once and is
tried again with a growing wait (up to MAX_BACKOFF) until it works.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter
from typing import Any

from flask import Flask

from backend.chain.errors import ChainError
from backend.chain.indexer import Indexer, JsonRpc
from backend.chain.outbox import outbox_service
from backend.chain.outbox_tasks import OUTBOX_WORK
from backend.config import Settings
from backend.core.db import get_db

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0  # seconds between two tries while the node is down
QUEUE_POLL = 0.1  # seconds between two looks for queued outbox rows (one indexed query)
INDEX_BUDGET = 10.0  # seconds of one indexer pass; a long backfill goes on next tick


class BlockWatcher:
    """Polls the node's head and runs the work a new block makes due. `tick()` is one round
    (tests call it directly); `start()` runs ticks in a daemon thread until `stop()`."""

    def __init__(self, app: Flask, interval: float | None = None) -> None:
        self.app = app
        settings: Settings = app.extensions["settings"]
        self.settings = settings
        self.interval = settings.block_watch_interval if interval is None else interval
        self.rpc = JsonRpc(settings.rpc_url, timeout=max(settings.rpc_timeout, 5.0))  # as the task
        self.head: int | None = None  # the last head the node gave
        self.index_due = False
        self.receipts_due = False
        self.down_since: float | None = None  # monotonic time the node stopped answering
        self.counts: Counter[str] = Counter()  # ticks, blocks, index, receipts, sends, busy, ...
        self._indexer: Indexer | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Jobs whose last try failed: how many times in a row (logged once until one works) and
        # when to try again (backing off up to MAX_BACKOFF, not every tick).
        self._failing: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}

    # ---------------------------------------------------------------- life cycle

    def start(self) -> BlockWatcher:
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._loop, name="block-watcher", daemon=True)
            self._thread.start()
            log.info("block watcher: polling %s every %.2f s", self._where(), self.interval)
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the loop after the work in hand; True when the thread has ended."""
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning(
                    "block watcher: still busy after %.0f s; left to end with the worker", timeout
                )
                return False
        self.rpc.close()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        """Full rounds every `interval` (longer while the node is down); between them, every
        QUEUE_POLL, only the look for queued rows, so a payment leaves within ~0.1 s."""
        next_round = time.monotonic()
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.tick()
                elif self.down_since is None and self._may_run("send"):
                    with self.app.app_context():
                        self._send_queued()
            except Exception:  # noqa: BLE001 - the loop must outlive any one round
                log.exception("block watcher: round failed")
                next_round = time.monotonic() + MAX_BACKOFF
            poll = min(QUEUE_POLL, self.interval)
            self._stopping.wait(max(0.0, min(poll, next_round - time.monotonic())))

    # ---------------------------------------------------------------- one round

    def tick(self) -> float:
        """One round: read the head, send queued rows, index and settle receipts when a block
        came (or earlier work is still due). Returns the seconds to wait before the next."""
        self.counts["ticks"] += 1
        try:
            head = self.rpc.block_number()
        except (ChainError, OSError, ValueError) as exc:
            return self._node_down(exc)
        if self.down_since is not None:
            log.warning(
                "block watcher: the node answers again after %.1f s (head %d); catching up",
                time.monotonic() - self.down_since,
                head,
            )
            self.down_since = None
            self.index_due = self.receipts_due = True
        if head != self.head:
            self.counts["blocks"] += 1
            self.head = head
            self.index_due = self.receipts_due = True
        with self.app.app_context():
            if self._may_run("send"):
                self._send_queued()
            if self.index_due and self._may_run("index"):
                self.index_due = not self._index()
            if self.receipts_due and self._may_run("receipts"):
                self.receipts_due = not self._receipts()
        return self.interval

    def _may_run(self, job: str) -> bool:
        return not self._stopping.is_set() and time.monotonic() >= self._retry_at.get(job, 0.0)

    def _node_down(self, exc: BaseException) -> float:
        self.counts["node_down"] += 1
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            log.warning(
                "block watcher: the node does not answer (%s); the beat's sweeps and "
                "this watcher retry",
                exc,
            )
        # Two more intervals per second down, capped: a short blip costs little, an outage
        # asks every few seconds.
        return min(MAX_BACKOFF, self.interval * (1 + 2 * (now - self.down_since)))

    # ---------------------------------------------------------------- the jobs

    def _job(self, name: str, fn: Any) -> bool | None:
        """Run one job; True done, False busy or not finished (due again next tick), None
        failed (logged once until it succeeds again)."""
        session = get_db().session
        try:
            done = bool(fn(session))
        except Exception as exc:  # noqa: BLE001 - due again later; the beat also sweeps
            session.rollback()
            self.counts[f"{name}_errors"] += 1
            fails = self._failing[name] = self._failing.get(name, 0) + 1
            wait = min(MAX_BACKOFF, self.interval * 2**fails)
            self._retry_at[name] = time.monotonic() + wait
            if fails == 1:
                log.warning(
                    "block watcher: %s failed (%s: %s); trying again, backing off up to %.0f s",
                    name,
                    type(exc).__name__,
                    exc,
                    MAX_BACKOFF,
                )
            return None
        if self._failing.pop(name, None):
            self._retry_at.pop(name, None)
            log.info("block watcher: %s works again", name)
        return done

    def _send_queued(self) -> None:
        svc = outbox_service()

        def send(session: Any) -> bool:
            senders = svc.senders_with_work(session)
            session.commit()
            if not senders:
                return True
            if not OUTBOX_WORK.acquire(blocking=False):
                self.counts["busy"] += 1
                return False  # a task of this process is at it; the next tick looks again
            try:
                for address in senders:
                    report = svc.send_pending(session, address)
                    self.counts["sent"] += report.sent
                self.counts["sends"] += 1
            finally:
                OUTBOX_WORK.release()
            return True

        self._job("send", send)

    def _index(self) -> bool:
        def index(session: Any) -> bool:
            session.commit()  # the indexer uses its own connections
            result = self._make_indexer().run(max_seconds=INDEX_BUDGET)
            if result.busy:
                self.counts["busy"] += 1
                return False
            self.counts["index"] += 1
            self.counts["events"] += result.events
            if result.events or result.reorgs:
                log.info("block watcher indexed: %s", result.as_dict())
            return result.caught_up

        return bool(self._job("index", index))

    def _receipts(self) -> bool:
        svc = outbox_service()

        def receipts(session: Any) -> bool:
            if not OUTBOX_WORK.acquire(blocking=False):
                self.counts["busy"] += 1
                return False
            try:
                settled = svc.check_receipts(session)
            finally:
                OUTBOX_WORK.release()
            self.counts["receipts"] += 1
            self.counts["settled"] += sum(settled.values())
            return True

        return bool(self._job("receipts", receipts))

    def _make_indexer(self) -> Indexer:
        if self._indexer is None:
            from backend.chain.indexer_tasks import build_indexer

            self._indexer = build_indexer(self.settings, self.rpc)
        return self._indexer

    def _where(self) -> str:
        return self.settings.rpc_url.split("@")[-1]


_INSTALLED: weakref.WeakSet[Flask] = weakref.WeakSet()


def install(celery_app: Any, flask_app: Flask) -> None:
    """Run a BlockWatcher in every worker process of `celery_app` (a worker bootstep: started
    once the pool is up, stopped at shutdown), unless BLOCK_WATCH_INTERVAL is 0."""
    from celery import bootsteps
    from celery.signals import worker_process_init

    class BlockWatchStep(bootsteps.StartStopStep):  # type: ignore[misc]
        """start/stop/terminate/shutdown call the watcher's start and stop (celery's
        StartStopStep on `self.obj`, the object `create` returns)."""

        requires = {"celery.worker.components:Pool"}
        label = "block watcher"

        def include_if(self, worker: Any) -> bool:
            return bool(flask_app.extensions["settings"].block_watch_interval > 0)

        def create(self, worker: Any) -> BlockWatcher:
            return BlockWatcher(flask_app)

    celery_app.steps["worker"].add(BlockWatchStep)
    _INSTALLED.add(flask_app)
    worker_process_init.connect(_fresh_connections, weak=False, dispatch_uid=__name__)


def _fresh_connections(**_: Any) -> None:
    """In a prefork child: drop the copies of the parent's pooled connections (the parent's
    watcher uses them) without closing the parent's sockets."""
    for app in list(_INSTALLED):
        app.extensions["db"].engine.dispose(close=False)


__all__ = ["BlockWatcher", "install"]
