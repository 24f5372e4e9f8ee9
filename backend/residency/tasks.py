"""Residency's periodic work (the indexer handlers are in residency/handlers.py, registered by
backend/composition.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.core.db import get_db
from backend.residency.failures import refresh_failed, waiting
from backend.residency.models import ISSUING, REVOKING

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "residency.fail_lost_passes": {
        "task": "residency.fail_lost_passes",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="residency.fail_lost_passes")
def fail_lost_passes() -> int:
    """Passes whose issue or revoke call failed on chain leave "issuing" / "revoking" even when
    nobody opens a page (pages also do it when they read the rows: failures.refresh_failed).
    Idempotent; returns how many rows left those states."""
    session = get_db().session()  # this app context's Session (mypy: not the scoped proxy)
    rows = waiting(session)
    refresh_failed(session, rows)
    moved = sum(1 for r in rows if r.state not in (ISSUING, REVOKING))
    session.commit()
    return moved
