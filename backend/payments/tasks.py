"""Payments' periodic work: retry or refund card orders whose mint failed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from flask import current_app

from backend.core.db import get_db
from backend.payments import handlers  # noqa: F401  (registers the order handlers)

BEAT_SCHEDULE = {
    "payments.reconcile_orders": {
        "task": "payments.reconcile_orders",
        "schedule": timedelta(seconds=3),
    },
}


@shared_task(name="payments.reconcile_orders")
def reconcile_orders() -> dict[str, Any]:
    """Fail, re-mint or refund orders whose chain transaction failed (see OrderService)."""
    from backend.nfts.services import ShopService
    from backend.payments.services import OrderService

    session = get_db().session
    shop = ShopService(session, current_app.config["SECRET_KEY"])
    return OrderService(session, shop).reconcile()
