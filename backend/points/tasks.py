"""Points tasks: `points.expire_lots` burns expired lots every 15 minutes (points/expiry.py);
`points.fail_lost_grants` records grants whose issue call failed (points/grant_failures.py).
The indexer handlers are in points/handlers.py, registered by backend/composition.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from backend.chain.api import outbox_service
from backend.core.db import get_db
from backend.points.expiry import expire_due
from backend.points.grant_failures import fail_lost_grants as _fail_lost_grants

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "points.expire_lots": {"task": "points.expire_lots", "schedule": timedelta(minutes=15)},
    "points.fail_lost_grants": {
        "task": "points.fail_lost_grants",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="points.expire_lots")
def expire_lots() -> dict[str, Any]:
    """Queue expire() for holders with expired lots; raise/resolve `points_expiry_late`."""
    session = get_db().session()  # this app context's Session (mypy: not the scoped proxy)
    try:
        report = expire_due(session, outbox_service())
    except Exception:
        session.rollback()
        raise
    return {"queued": {k: len(v) for k, v in report.queued.items()}, "late": report.late}


@shared_task(name="points.fail_lost_grants")
def fail_lost_grants() -> int:
    """Grants whose issue call failed on chain become "failed" (audit row, daily cap given
    back) even when nobody opens a page (pages do it too when they read grant states).
    Idempotent; returns how many grants this run changed."""
    session = get_db().session()  # this app context's Session (mypy: not the scoped proxy)
    try:
        return _fail_lost_grants(session)
    except Exception:
        session.rollback()
        raise
