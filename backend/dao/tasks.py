"""DAO tasks (the indexer handlers are in dao/handlers.py, registered by backend/composition.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.core.db import get_db
from backend.dao.vote_state import mark_lost_votes as run

BEAT_SCHEDULE = {
    "dao.mark_lost_votes": {"task": "dao.mark_lost_votes", "schedule": timedelta(seconds=5)},
}


@shared_task(name="dao.mark_lost_votes")
def mark_lost_votes() -> int:
    """Votes whose transaction failed (e.g. after a deep reorg) are shown as not counted."""
    return run(get_db().session)
