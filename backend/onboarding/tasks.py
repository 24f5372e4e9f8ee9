"""Onboarding tasks: `onboarding.advance_town_setups` moves every running town setup on
(backend/onboarding/services.py), every 2 seconds; the outbox's own tasks send its steps."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.onboarding.services import town_setup_service

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "onboarding.advance_town_setups": {
        "task": "onboarding.advance_town_setups",
        "schedule": timedelta(seconds=2),
    },
}


@shared_task(name="onboarding.advance_town_setups")
def advance_town_setups() -> dict[str, str]:
    """Advance each running setup (idempotent: the setup row is locked while it moves)."""
    svc = town_setup_service()
    out = {}
    try:
        for setup_id in svc.running_ids():
            out[str(setup_id)] = svc.advance(setup_id).state
    except Exception:
        svc.session.rollback()
        raise
    return out
