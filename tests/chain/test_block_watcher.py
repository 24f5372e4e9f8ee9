"""The block watcher (backend/chain/block_watcher.py): a new block, not a beat tick, sends,
indexes and settles; one indexer pass at a time; a node that goes away and comes back; a clean
stop, also as a worker bootstep. No timings are asserted: the tests count rounds and wait for
states."""

# ruff: noqa: F811  (pytest fixtures imported from _outbox_fixtures are used as arguments)
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from backend.chain.block_watcher import BlockWatcher, install
from backend.chain.indexer import Indexer, JsonRpc
from backend.chain.indexer_models import ChainCursor, ChainEventRecord
from backend.chain.indexer_tasks import build_indexer
from backend.chain.outbox import ContractCall, Sender, outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from tests.chain._outbox_fixtures import (  # noqa: F401  (fixtures)
    POINTS,
    PROGRAMME,
    chain,
    mine,
    outbox_app,
    rpc_proxy,
)

RECIPIENT = "0x000000000000000000000000000000000000bEEF"
WAIT = 60.0  # seconds a state may take to arrive before the test fails (an upper bound)


def _issue(app: Flask, key: str = "watch-1") -> int:
    """Queue a points issue (the worker's kind of work); returns the outbox row's id."""
    with app.app_context():
        session = get_db().session
        tx = outbox_service().enqueue(
            session,
            ContractCall(POINTS, "issue", [RECIPIENT, 7, PROGRAMME, "watcher"]),
            sender=Sender.role("issuer", town_id=1),
            key=key,
        )
        session.commit()
        return int(tx.id)


def _row(app: Flask, tx_id: int) -> tuple[str, str | None]:
    with app.app_context():
        row = get_db().session.get(OutboxTx, tx_id, populate_existing=True)
        assert row is not None
        return row.state, row.tx_hash


def _indexed(app: Flask, tx_hash: str | None) -> int:
    """How many events of this transaction the indexer stored."""
    if tx_hash is None:
        return 0
    with app.app_context():
        return int(
            get_db().session.scalar(
                sa.select(sa.func.count())
                .select_from(ChainEventRecord)
                .where(ChainEventRecord.tx_hash == tx_hash.lower())
            )
            or 0
        )


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.02)


def test_a_new_block_triggers_indexing_and_receipts_and_no_block_triggers_nothing(
    outbox_app, chain, any_db_url
):
    # One confirmation: the block that mines the call is not enough, the next one is.
    app = outbox_app(database_url=any_db_url, confirmations=1)
    tx_id = _issue(app)
    watcher = BlockWatcher(app, interval=0.05)

    watcher.tick()  # a head it has not seen: the queued row goes out (anvil mines it at once)
    state, tx_hash = _row(app, tx_id)
    assert state == "sent" and watcher.counts["sent"] == 1
    assert watcher.counts["index"] == 1 and watcher.counts["receipts"] == 1
    assert _indexed(app, tx_hash) == 0  # its block is the head: not yet confirmed

    watcher.tick()  # the send's block is new to the watcher: it looks again, still too early
    rounds = (watcher.counts["index"], watcher.counts["receipts"])
    watcher.tick()  # no new block: nothing is due, nothing runs
    assert (watcher.counts["index"], watcher.counts["receipts"]) == rounds
    assert _row(app, tx_id)[0] == "sent"

    mine(chain)
    watcher.tick()
    assert (watcher.counts["index"], watcher.counts["receipts"]) == (rounds[0] + 1, rounds[1] + 1)
    assert _row(app, tx_id)[0] == "confirmed"
    assert _indexed(app, tx_hash) >= 1  # Transfer and PointsIssued of the call


def test_the_watcher_thread_confirms_a_call_without_any_beat_and_stops_cleanly(
    outbox_app, chain, any_db_url
):
    app = outbox_app(database_url=any_db_url)
    watcher = BlockWatcher(app, interval=0.05).start()
    try:
        assert watcher.running
        tx_id = _issue(app)
        _wait("the call to be confirmed", lambda: _row(app, tx_id)[0] == "confirmed")
        _wait("its events to be indexed", lambda: _indexed(app, _row(app, tx_id)[1]) >= 1)
        assert watcher.counts["blocks"] >= 1 and watcher.counts["sends"] >= 1
    finally:
        assert watcher.stop() is True
    assert not watcher.running
    ticks = watcher.counts["ticks"]
    mine(chain)
    assert watcher.counts["ticks"] == ticks  # stopped means stopped


def _hold_cursor(app: Flask, chain_id: int) -> Callable[[], None]:
    """Hold the chain's indexer lock as another worker would; returns the release."""
    engine = get_db().engine
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        tx = conn.begin()
        conn.execute(
            sa.select(ChainCursor).where(ChainCursor.chain_id == chain_id).with_for_update()
        )

        def release_pg() -> None:
            tx.rollback()
            conn.close()

        return release_pg
    with engine.begin() as conn:
        conn.execute(
            sa.update(ChainCursor)
            .where(ChainCursor.chain_id == chain_id)
            .values(
                locked_by="another-host:1:1",
                locked_until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            )
        )

    def release_sqlite() -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.update(ChainCursor)
                .where(ChainCursor.chain_id == chain_id)
                .values(locked_by=None, locked_until=None)
            )

    return release_sqlite


def test_an_indexer_pass_held_elsewhere_makes_it_wait_then_it_catches_up(
    outbox_app, chain, any_db_url
):
    app = outbox_app(database_url=any_db_url)
    watcher = BlockWatcher(app, interval=0.05)
    watcher.tick()  # the first pass creates the cursor row
    assert watcher.counts["index"] == 1
    with app.app_context():
        chain_id = outbox_service().chain_id
        release = _hold_cursor(app, chain_id)
    try:
        tx_id = _issue(app)

        # The first tick sends (anvil mines the call at once); the call's block makes a pass
        # due, which finds the lock held elsewhere, and stays due with no new block. Tick as
        # the watcher's loop does until two passes were refused: on a loaded machine a tick
        # may come before the block, or after a failed pass's back-off.
        def refused_twice() -> bool:
            watcher.tick()
            return watcher.counts["busy"] >= 2

        _wait("two passes refused while the lock is held", refused_twice)
        assert watcher.index_due
        assert watcher.counts["index"] == 1
        assert _indexed(app, _row(app, tx_id)[1]) == 0
    finally:
        with app.app_context():
            release()
    watcher.tick()  # no new block, but the pass is still due
    assert not watcher.index_due and watcher.counts["index"] == 2
    assert _indexed(app, _row(app, tx_id)[1]) >= 1


def test_a_beat_pass_in_the_same_process_finds_the_watchers_pass_busy(
    outbox_app, chain, any_db_url, monkeypatch
):
    """The watcher's thread and a task of the same worker process are two holders of the
    chain's lock, not one re-entering it (on SQLite the lease names the thread): while the
    watcher's pass holds it, the task's pass returns busy; once it is done, the task's runs."""
    app = outbox_app(database_url=any_db_url)
    settings = app.extensions["settings"]
    watcher = BlockWatcher(app, interval=0.05)
    watcher.tick()  # indexed up to the head: each later pass is one step
    mine(chain)
    holding, go = threading.Event(), threading.Event()
    pg = any_db_url.startswith("postgresql")
    # Where the watcher's pass holds the lock: PostgreSQL's row lock lasts the step's
    # transaction; SQLite's lease lasts until the run releases it.
    point = "_watched" if pg else "_release"
    original = getattr(Indexer, point)

    def paused(self: Indexer, *args: Any) -> Any:
        if threading.current_thread() is thread:
            holding.set()
            assert go.wait(WAIT)
        return original(self, *args)

    monkeypatch.setattr(Indexer, point, paused)
    thread = threading.Thread(target=watcher.tick)
    thread.start()
    try:
        assert holding.wait(WAIT)
        with app.app_context():
            during = build_indexer(settings, JsonRpc(settings.rpc_url)).run()
        assert during.busy and not during.caught_up
    finally:
        go.set()
        thread.join(WAIT)
    assert watcher.counts["index"] == 2 and not watcher.index_due
    with app.app_context():
        after = build_indexer(settings, JsonRpc(settings.rpc_url)).run()
    assert not after.busy and after.caught_up


def test_it_survives_the_node_going_away_and_recovers(
    outbox_app, chain, rpc_proxy, any_db_url, caplog
):
    rpc_proxy.up()
    app = outbox_app(database_url=any_db_url, rpc_url=rpc_proxy.url, rpc_timeout=1.0)
    watcher = BlockWatcher(app, interval=0.05)
    watcher.tick()
    assert watcher.down_since is None
    tx_id = _issue(app)
    rpc_proxy.down()
    caplog.set_level(logging.WARNING, logger="backend.chain.block_watcher")
    waits = [watcher.tick() for _ in range(3)]
    assert watcher.counts["node_down"] == 3 and watcher.down_since is not None
    assert all(w >= watcher.interval for w in waits)
    downs = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(downs) == 1  # said once, not every tick
    assert _row(app, tx_id)[0] == "queued"

    rpc_proxy.up()
    watcher.start()
    try:
        _wait("the call to be confirmed", lambda: _row(app, tx_id)[0] == "confirmed")
        _wait("its events to be indexed", lambda: _indexed(app, _row(app, tx_id)[1]) >= 1)
    finally:
        assert watcher.stop()
    assert watcher.down_since is None
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_stop_while_the_node_is_down_ends_the_thread(outbox_app, chain, rpc_proxy):
    app = outbox_app(rpc_url=rpc_proxy.url, rpc_timeout=1.0)  # the proxy was never up
    watcher = BlockWatcher(app, interval=0.05).start()
    _wait("the watcher to find the node down", lambda: watcher.counts["node_down"] >= 2)
    assert watcher.stop() is True and not watcher.running


def test_a_worker_runs_the_watcher_and_stops_it_at_shutdown(outbox_app, chain):
    from celery.contrib.testing.worker import start_worker

    app = outbox_app(block_watch_interval=0.05)
    celery = app.extensions["celery"]
    install(celery, app)
    tx_id = _issue(app)  # no task is sent (auto_dispatch off) and no beat runs
    before = {t.ident for t in threading.enumerate() if t.name == "block-watcher"}
    with start_worker(
        celery,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[celery.conf.task_default_queue],
        shutdown_timeout=10,
    ):
        _wait("the watcher to confirm the call", lambda: _row(app, tx_id)[0] == "confirmed")
        ours = [
            t for t in threading.enumerate() if t.name == "block-watcher" and t.ident not in before
        ]
        assert len(ours) == 1
    assert not ours[0].is_alive()


def test_an_interval_of_zero_starts_no_watcher(outbox_app, chain):
    from celery.contrib.testing.worker import start_worker

    app = outbox_app(block_watch_interval=0.0)
    celery = app.extensions["celery"]
    install(celery, app)
    before = {t.ident for t in threading.enumerate()}
    with start_worker(
        celery,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[celery.conf.task_default_queue],
        shutdown_timeout=10,
    ):
        new = [t for t in threading.enumerate() if t.ident not in before]
        assert not [t for t in new if t.name == "block-watcher"]


def test_a_failing_job_is_logged_once_backs_off_and_recovers(outbox_app, chain, caplog):
    app = outbox_app()
    tx_id = _issue(app)
    watcher = BlockWatcher(app, interval=5.0)  # backs off 10 s, capped at 5: no retry below
    with app.app_context():
        svc = outbox_service()
    real = svc.send_pending

    def broken(session: Any, address: str) -> Any:
        raise RuntimeError("a key this worker lacks")

    svc.send_pending = broken  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="backend.chain.block_watcher")
    try:
        watcher.tick()
        assert watcher.counts["send_errors"] == 1 and _row(app, tx_id)[0] == "queued"
        assert watcher._retry_at["send"] > time.monotonic()  # not again at the next tick
        watcher._retry_at["send"] = 0.0  # as if the wait were over
        watcher.tick()
        assert watcher.counts["send_errors"] == 2
    finally:
        svc.send_pending = real  # type: ignore[method-assign]
    failed = [r for r in caplog.records if "send failed" in r.getMessage()]
    assert len(failed) == 1 and "a key this worker lacks" in failed[0].getMessage()
    watcher._retry_at["send"] = 0.0
    watcher.tick()
    assert _row(app, tx_id)[0] in ("sent", "confirmed")
    assert any("send works again" in r.getMessage() for r in caplog.records)
