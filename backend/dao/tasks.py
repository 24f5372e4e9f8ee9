"""DAO tasks (the indexer handlers are in dao/handlers.py, registered by backend/composition.py)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from flask import current_app

from backend.core.db import get_db
from backend.dao.projected import record_facts
from backend.dao.vote_state import mark_lost_votes as run

BEAT_SCHEDULE = {
    "dao.mark_lost_votes": {"task": "dao.mark_lost_votes", "schedule": timedelta(seconds=5)},
    "dao.record_proposal_facts": {
        "task": "dao.record_proposal_facts",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="dao.mark_lost_votes")
def mark_lost_votes() -> int:
    """Votes whose transaction failed (e.g. after a deep reorg) are shown as not counted."""
    return run(get_db().session)


@shared_task(name="dao.record_proposal_facts")
def record_proposal_facts() -> int:
    """Record each proposal's voting token and, once its snapshot is past, its quorum: what the
    pages need from the governor and cannot read from the indexed events."""
    return record_facts(get_db().session(), current_app.extensions["chain"])
