"""Sending webhooks: beat runs `webhooks.deliver_due` every few seconds (queueing a delivery
also sends it after commit); a run sends what is due, one delivery at a time, and stops after a
time budget so a long queue never holds a worker for long (the next run goes on)."""

from __future__ import annotations

import time
from datetime import timedelta

from celery import shared_task
from flask import current_app

from backend.core.db import get_db, utcnow
from backend.webhooks.delivery import Retry, attempt, claim_next, finish
from backend.webhooks.services import DELIVER_TASK, url_policy

RUN_BUDGET = 30.0  # seconds of sending per run

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    DELIVER_TASK: {"task": DELIVER_TASK, "schedule": timedelta(seconds=5)},
}


@shared_task(name=DELIVER_TASK)
def deliver_due(limit: int = 500) -> dict[str, int]:
    settings = current_app.extensions["settings"]
    secret_key = current_app.config["SECRET_KEY"]
    policy = url_policy()
    retry = Retry(
        settings.webhook_retry_base, settings.webhook_retry_cap, settings.webhook_max_attempts
    )
    session = get_db().session()
    counts = {"delivered": 0, "pending": 0, "failed": 0, "lost": 0}
    started = time.monotonic()
    sent = 0
    while sent < limit and time.monotonic() - started < RUN_BUDGET:
        claim = claim_next(session, utcnow(), settings.webhook_lease_seconds)
        if claim is None:
            return counts
        outcome = attempt(
            claim,
            secret_key=secret_key,
            policy=policy,
            timeout=settings.webhook_timeout,
            now=utcnow(),
        )
        state = finish(session, claim, outcome, utcnow(), retry)
        counts[state or "lost"] += 1
        sent += 1
    current_app.extensions["celery"].send_task(DELIVER_TASK)  # more may be due: go on
    return counts
