"""Sending notification mail: `notifications.send_mails` runs after a commit that queued a mail
(services.kick_after_commit) and every 30 s from beat (what a lost kick missed, what waited for
a retry or for the person's hour). A run sends one mail at a time and stops after a time budget
so that a long queue never holds a worker for long (it sends itself again to go on)."""

from __future__ import annotations

import time
from datetime import timedelta

from celery import shared_task
from flask import current_app

from backend.core.db import get_db, utcnow
from backend.notifications.mailing import claim_next, deliver
from backend.notifications.services import SEND_TASK

RUN_BUDGET = 30.0  # seconds of sending per run

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    SEND_TASK: {"task": SEND_TASK, "schedule": timedelta(seconds=30)},
}


@shared_task(name=SEND_TASK)
def send_mails(limit: int = 200) -> dict[str, int]:
    """Send the due notification mails (at most `limit` in this run); counts by outcome."""
    settings = current_app.extensions["settings"]
    session = get_db().session()
    counts: dict[str, int] = {}
    started = time.monotonic()
    done = 0
    while done < limit and time.monotonic() - started < RUN_BUDGET:
        claim = claim_next(session, utcnow())
        if claim is None:
            return counts
        state = deliver(session, settings, claim, utcnow())
        counts[state] = counts.get(state, 0) + 1
        done += 1
    current_app.extensions["celery"].send_task(SEND_TASK)  # more may be due: go on
    return counts
