"""Merchants' periodic work (the indexer handlers are in merchants/handlers.py, registered by
backend/composition.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from sqlalchemy import select

from backend.core.db import get_db
from backend.merchants.models import REDEEMING, Settlement
from backend.merchants.settlement_state import refresh_failed

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "merchants.fail_lost_redemptions": {
        "task": "merchants.fail_lost_redemptions",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="merchants.fail_lost_redemptions")
def fail_lost_redemptions() -> int:
    """Settlements whose burn failed (e.g. after a deep reorg) become "failed" even when nobody
    opens a page (pages also refresh them when read: settlement_state.refresh_failed)."""
    session = get_db().session
    rows = list(session.scalars(select(Settlement).where(Settlement.status == REDEEMING)))
    refresh_failed(session, rows)
    failed = sum(1 for s in rows if s.status != REDEEMING)
    session.commit()
    return failed
