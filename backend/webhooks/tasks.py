"""Sending webhooks: beat runs `webhooks.deliver_due` every few seconds (queueing a delivery
also sends it after commit); a run sends what is due, one delivery at a time, and stops after a
time budget so a long queue never holds a worker for long (the next run goes on).

A delivery whose attempt raised (a bug) is finished as a failed attempt, and one claimed more
often than WEBHOOK_MAX_ATTEMPTS (each earlier worker died before it finished) fails without
another POST: either would otherwise stay "delivering", be claimed again after every lease and
sent for ever."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from celery import shared_task
from flask import current_app

from backend.core.db import get_db, utcnow
from backend.webhooks.delivery import MAX_ERROR, Outcome, Retry, attempt, claim_next, finish
from backend.webhooks.services import DELIVER_TASK, url_policy

log = logging.getLogger(__name__)

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
        if claim.attempts > retry.max_attempts:
            outcome = Outcome(False, error="no attempt finished: given up", give_up=True)
        else:
            try:
                outcome = attempt(
                    claim,
                    secret_key=secret_key,
                    policy=policy,
                    timeout=settings.webhook_timeout,
                    now=utcnow(),
                )
            except Exception as exc:
                log.exception("webhook delivery %s: the attempt raised", claim.id)
                outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
        state = finish(session, claim, outcome, utcnow(), retry)
        counts[state or "lost"] += 1
        sent += 1
    current_app.extensions["celery"].send_task(DELIVER_TASK)  # more may be due: go on
    return counts
