"""Claims' periodic work: take the wallets whose address a verified account holds (the pages
take them at once; this catches a missed one), move claimed points to their owners, and let
held claims lapse once their points expired on chain unclaimed."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.claims.services import claim_service

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "claims.take_verified": {"task": "claims.take_verified", "schedule": timedelta(seconds=60)},
    "claims.move_claimed": {"task": "claims.move_claimed", "schedule": timedelta(seconds=10)},
    "claims.lapse_held": {"task": "claims.lapse_held", "schedule": timedelta(hours=1)},
}


@shared_task(name="claims.take_verified")
def take_verified() -> int:
    return claim_service().take_verified()


@shared_task(name="claims.move_claimed")
def move_claimed() -> int:
    return claim_service().move_claimed()


@shared_task(name="claims.lapse_held")
def lapse_held() -> int:
    return claim_service().lapse_held()
