"""Celery tasks that drive the indexer: a beat-scheduled pass per chain and reconciliation.

Both take ints, never ORM objects, and retry with exponential backoff while the RPC node is
unreachable. Several workers may run `chain.index_blocks` at once: the chain's cursor row is the
lock, so all but one return {"busy": True} at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import requests
from celery import shared_task
from flask import current_app

from backend.chain.gateway import ChainUnavailable
from backend.chain.indexer import Indexer, JsonRpc, reconcile, store_report
from backend.config import Settings
from backend.core.db import get_db

log = logging.getLogger(__name__)

RPC_ERRORS = (ChainUnavailable, requests.ConnectionError, requests.Timeout)
RETRY = {
    "autoretry_for": RPC_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 30,
}

BEAT_SCHEDULE = {
    "chain.index_blocks": {"task": "chain.index_blocks", "schedule": timedelta(seconds=5)},
    "chain.reconcile_projection": {
        "task": "chain.reconcile_projection",
        "schedule": timedelta(hours=1),
    },
}


def _settings() -> Settings:
    settings: Settings = current_app.extensions["settings"]
    return settings


def _rpc(settings: Settings) -> JsonRpc:
    """A client for one task run, closed by the task (`with`): a run that left it to the
    garbage collector left its two connections to the node open until then, every 5 s."""
    return JsonRpc(settings.rpc_url, timeout=max(settings.rpc_timeout, 5.0))


def build_indexer(settings: Settings, rpc: JsonRpc, chain_id: int | None = None) -> Indexer:
    """The app's Indexer on `rpc` (the node's chain; `chain_id` is the node's when known).
    Also the block watcher's (backend/chain/block_watcher.py)."""
    actual = rpc.chain_id() if chain_id is None else chain_id
    return Indexer(
        get_db().engine,
        rpc,
        deployments_dir=settings.deployments_dir,
        confirmations=settings.confirmations_for(actual),
        chunk_size=settings.indexer_chunk_size,
        batch_events=settings.indexer_batch_events,
        _chain_id=actual,
    )


@shared_task(name="chain.index_blocks", **RETRY)
def index_blocks(chain_id: int | None = None, max_seconds: float = 50.0) -> dict[str, Any]:
    """Index the configured chain up to head - confirmations (at most `max_seconds`; the next
    beat continues). `chain_id`, when given, must be the RPC node's chain."""
    settings = _settings()
    with _rpc(settings) as rpc:
        actual = rpc.chain_id()
        if chain_id is not None and chain_id != actual:
            raise ValueError(f"RPC_URL serves chain {actual}, not {chain_id}")
        result = build_indexer(settings, rpc, actual).run(max_seconds=max_seconds)
    if result.events or result.reorgs:
        log.info("indexed chain %s: %s", actual, result.as_dict())
    return result.as_dict()


@shared_task(name="chain.reconcile_projection", **RETRY)
def reconcile_projection(chain_id: int | None = None) -> dict[str, Any]:
    """Compare SQL balances and ownership with chain reads; store and return a report."""
    settings = _settings()
    with _rpc(settings) as rpc:
        actual = rpc.chain_id()
        if chain_id is not None and chain_id != actual:
            raise ValueError(f"RPC_URL serves chain {actual}, not {chain_id}")
        engine = get_db().engine
        checked, diffs = reconcile(engine, rpc, actual)
    report_id = store_report(engine, actual, checked, diffs)
    for d in diffs:
        log.error("reconciliation difference on chain %s: %s", actual, d)
    return {
        "report_id": report_id,
        "chain_id": actual,
        "checked": checked,
        "differences": [d.__dict__ for d in diffs],
    }
