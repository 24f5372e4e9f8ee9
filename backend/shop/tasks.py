"""The shop's periodic work: retry or refund card orders whose mint failed. Importing this module
(web and worker processes do, see backend/core/discovery.py) also registers the shop's indexer
handlers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from backend.shop import handlers  # noqa: F401  (registers the shop's and orders' handlers)
from backend.shop.services import card_payment_service

BEAT_SCHEDULE = {
    "payments.reconcile_orders": {
        "task": "payments.reconcile_orders",
        "schedule": timedelta(seconds=3),
    },
}


@shared_task(name="payments.reconcile_orders")
def reconcile_orders() -> dict[str, Any]:
    """Fail, re-mint or refund orders whose chain transaction failed (see CardPaymentService)."""
    return card_payment_service().reconcile()
