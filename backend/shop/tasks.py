"""The shop's periodic work: retry or refund card orders whose mint failed, give back the use
of ticket check-ins whose call failed, and sign allowlist vouchers. (The shop's indexer
handlers are in shop/handlers.py, registered by backend/composition.py.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from backend.core.db import get_db
from backend.shop.checkin_state import fail_lost_check_ins
from backend.shop.services import card_payment_service, collection_console

BEAT_SCHEDULE = {
    "payments.reconcile_orders": {
        "task": "payments.reconcile_orders",
        "schedule": timedelta(seconds=3),
    },
    "shop.fail_lost_checkins": {
        "task": "shop.fail_lost_checkins",
        "schedule": timedelta(seconds=5),
    },
    "shop.sign_vouchers": {
        "task": "shop.sign_vouchers",
        "schedule": timedelta(seconds=5),
    },
}


@shared_task(name="payments.reconcile_orders")
def reconcile_orders() -> dict[str, Any]:
    """Fail, re-mint or refund orders whose chain transaction failed (see CardPaymentService)."""
    return card_payment_service().reconcile()


@shared_task(name="shop.fail_lost_checkins")
def fail_lost_checkins() -> int:
    """Check-ins whose usePerk call failed on chain become "failed" even when nobody looks the
    ticket up (the look-up and "my collection" do it too: checkin_state.py). Idempotent."""
    session = get_db().session
    try:
        return fail_lost_check_ins(session)
    finally:
        session.rollback()


@shared_task(name="shop.sign_vouchers")
def sign_vouchers() -> int:
    """Sign the allowlist vouchers of listings now on chain (the worker holds the
    `voucher_signer` key; see CollectionConsole.sign_pending_vouchers). Idempotent."""
    return collection_console().sign_pending_vouchers()
