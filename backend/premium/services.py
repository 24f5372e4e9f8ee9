"""Factories of the premium sale's services for the current app (the one place here that reads
the app), and the registration of its purchases with the card provider's webhook."""

from __future__ import annotations

from flask import current_app

from backend.chain.api import outbox_service
from backend.core.db import get_db
from backend.premium.offers import OfferService, offer_service
from backend.premium.purchases import PREFIX, PurchaseService
from backend.shop.payment_targets import register_payment_target
from backend.shop.services import on_test_chain, payment_provider

__all__ = [
    "OfferService",
    "PurchaseService",
    "offer_service",
    "on_test_chain",
    "payment_provider",
    "purchase_service",
    "register",
]


def purchase_service() -> PurchaseService:
    """A PurchaseService for the current app and request (the configured card provider)."""
    return PurchaseService(
        get_db().session(),
        outbox=outbox_service,
        provider=payment_provider,
        public_url=current_app.extensions["settings"].public_url,
    )


def register() -> None:
    """Send the provider's events for purchases (public ids "pp_...") to PurchaseService (the
    composition root calls this once per app)."""
    register_payment_target(PREFIX, purchase_service)
