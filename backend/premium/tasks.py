"""Periodic work of points bought with a premium: issues that failed on chain are retried and
then refunded, unpaid checkouts give their reservation back (PurchaseService.reconcile)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from backend.premium.services import purchase_service

BEAT_SCHEDULE = {
    "premium.reconcile_purchases": {
        "task": "premium.reconcile_purchases",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="premium.reconcile_purchases")
def reconcile_purchases() -> dict[str, int]:
    """Idempotent: a purchase is retried, refunded or expired once (guarded updates, keys)."""
    return purchase_service().reconcile()
