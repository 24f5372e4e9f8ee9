"""Points tasks: `points.expire_lots` burns expired lots every 15 minutes (points/expiry.py).
The indexer handlers are in points/handlers.py, registered by backend/composition.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from backend.chain.api import outbox_service
from backend.core.db import get_db
from backend.points.expiry import expire_due

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "points.expire_lots": {"task": "points.expire_lots", "schedule": timedelta(minutes=15)},
}


@shared_task(name="points.expire_lots")
def expire_lots() -> dict[str, Any]:
    """Queue expire() for holders with expired lots; raise/resolve `points_expiry_late`."""
    session = get_db().session
    try:
        report = expire_due(session, outbox_service())
    except Exception:
        session.rollback()
        raise
    return {"queued": {k: len(v) for k, v in report.queued.items()}, "late": report.late}
