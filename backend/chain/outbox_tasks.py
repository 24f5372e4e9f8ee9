"""Celery tasks that drive the outbox (backend/chain/outbox/). They take ids, never ORM objects.

When the RPC endpoint does not answer, a task rolls back and retries with exponential backoff;
the beat schedule below also sweeps every sender, so work survives lost task messages.

Each task's work holds OUTBOX_WORK, one lock per process, which the block watcher's sends and
receipt checks take too (backend/chain/block_watcher.py): two threads of one worker never work
on outbox rows at once. Across processes PostgreSQL's row locks do that (the sender's row,
SKIP LOCKED in-flight rows); SQLite has none, so a SQLite database takes one worker process
(`--pool solo`, as `make run` starts it).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from celery import shared_task

from backend.chain.outbox import RpcUnavailable, outbox_service
from backend.chain.outbox_recovery import recover_reorged
from backend.core.db import get_db

RETRY_BASE_SECONDS = 1.0  # 1, 2, 4, ... capped; tests lower it
RETRY_MAX_SECONDS = 60.0
MAX_RETRIES = 12

BEAT_SCHEDULE = {
    "chain.send_outbox": {"task": "chain.send_outbox", "schedule": timedelta(seconds=5)},
    "chain.check_outbox_receipts": {
        "task": "chain.check_outbox_receipts",
        "schedule": timedelta(seconds=2),
    },
    "chain.bump_stuck_txs": {"task": "chain.bump_stuck_txs", "schedule": timedelta(seconds=15)},
    "chain.recover_reorged_txs": {
        "task": "chain.recover_reorged_txs",
        "schedule": timedelta(seconds=5),
    },
}


OUTBOX_WORK = threading.Lock()  # one outbox job at a time in this process (see the docstring)


def backoff(retries: int) -> float:
    return float(min(RETRY_BASE_SECONDS * 2**retries, RETRY_MAX_SECONDS))


def _run(task: Any, fn: Any) -> Any:
    session = get_db().session
    try:
        with OUTBOX_WORK:
            return fn(session)
    except RpcUnavailable as exc:
        session.rollback()
        raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from None
    except Exception:
        session.rollback()
        raise


@shared_task(bind=True, name="chain.send_outbox", max_retries=MAX_RETRIES)
def send_outbox(self: Any, sender_address: str | None = None) -> dict[str, Any]:
    """Sign and broadcast queued rows of one sender (None: every sender with queued work)."""
    svc = outbox_service()

    def work(session: Any) -> dict[str, Any]:
        senders = [sender_address] if sender_address else svc.senders_with_work(session)
        out: dict[str, Any] = {}
        for address in senders:
            report = svc.send_pending(session, address)
            out[address] = {
                "sent": report.sent,
                "waiting_for_funds": report.waiting_for_funds,
                "failed": report.failed,
                "cancelled": report.cancelled,
                "errors": report.errors,
            }
        return out

    return _run(self, work)  # type: ignore[no-any-return]


@shared_task(bind=True, name="chain.check_outbox_receipts", max_retries=MAX_RETRIES)
def check_outbox_receipts(self: Any) -> dict[str, int]:
    """Settle in-flight rows whose receipts are in (confirmed, reverted, cancelled, failed)."""
    svc = outbox_service()
    return _run(self, svc.check_receipts)  # type: ignore[no-any-return]


@shared_task(bind=True, name="chain.bump_stuck_txs", max_retries=MAX_RETRIES)
def bump_stuck_txs(self: Any) -> int:
    """Re-price rows unmined after N blocks; cancel with a no-op those past their deadline."""
    svc = outbox_service()
    return _run(self, svc.bump_stuck)  # type: ignore[no-any-return]


@shared_task(bind=True, name="chain.recover_reorged_txs", max_retries=MAX_RETRIES)
def recover_reorged_txs(self: Any) -> dict[str, Any]:
    """Re-send (or fail) settled rows whose transactions a reorg took off the chain and fill
    the nonce holes left behind (backend/chain/outbox_recovery.py)."""
    svc = outbox_service()

    def work(session: Any) -> dict[str, Any]:
        report = recover_reorged(svc, session)
        return {
            "reopened": report.reopened,
            "failed": report.failed,
            "rebroadcast": report.rebroadcast,
            "fillers": report.fillers,
            "moved": report.moved,
            "chain_reset": report.chain_reset,
        }

    return _run(self, work)  # type: ignore[no-any-return]
