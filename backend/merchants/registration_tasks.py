"""Merchants' registration follows its failed chain calls (registration.py). A module of its
own beside tasks.py, which the settlement work keeps."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.core.db import get_db
from backend.merchants.registration import fail_lost_registrations as _fail_lost_registrations

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "merchants.fail_lost_registrations": {
        "task": "merchants.fail_lost_registrations",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="merchants.fail_lost_registrations")
def fail_lost_registrations() -> int:
    """Shops whose addMerchant call failed on chain become "failed" (audit row) even when
    nobody opens the shops page (which does it too). Idempotent; returns how many this run
    changed."""
    session = get_db().session()  # this app context's Session (mypy: not the scoped proxy)
    try:
        return _fail_lost_registrations(session)
    except Exception:
        session.rollback()
        raise
