"""Issuing's periodic work: in-flight batches follow their outbox rows (sent, failed) even when
nobody has the progress page open (the page refreshes them too)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.core.db import get_db, utcnow
from backend.issuing.services import refresh_in_flight

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "issuing.refresh_batches": {
        "task": "issuing.refresh_batches",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="issuing.refresh_batches")
def refresh_batches() -> int:
    session = get_db().session()
    n = refresh_in_flight(session, utcnow())
    session.commit()
    return n
