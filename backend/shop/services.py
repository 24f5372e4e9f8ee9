"""Factories of the shop's services for the current app: the one place that reads the app
(config, settings, extensions) and hands each service its session and collaborators.

Routes, pages and tasks get their services here; tests may build a service with its own
collaborators instead.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

from backend.accounts.services import AccountService
from backend.chain.api import Web3Gateway, get_vault, outbox_service
from backend.core.db import get_db
from backend.core.purpose_keys import TEST_CARD_WEBHOOK, TICKET, purpose_key_hex
from backend.shop.card_payments import CardPaymentService
from backend.shop.catalog import ShopService, YenLabel, is_test_chain, yen_label
from backend.shop.checkin import CheckInService
from backend.shop.console import CollectionConsole
from backend.shop.gifts import GiftService
from backend.shop.orders import OrderService
from backend.shop.providers import PaymentProvider, StripeProvider, TestCardProvider
from backend.shop.wallet_orders import WalletOrderService


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _chain(app: Flask) -> Callable[[], Web3Gateway]:
    def chain() -> Web3Gateway:
        return app.extensions["chain"]  # type: ignore[no-any-return]

    return chain


def on_test_chain() -> bool:
    """Whether the app's node is a local test chain (test checkout, its webhook, the faucet)."""
    return is_test_chain(_app().extensions["chain"])


def yen_currency() -> YenLabel | None:
    """How pages name the app's chain's yen token (test money on a local chain's test token;
    its symbol when configured); None when the chain has none."""
    return yen_label(_app().extensions["chain"])


def payment_provider() -> PaymentProvider:
    """The configured card provider: PAYMENT_PROVIDER=stripe with STRIPE_SECRET_KEY and
    STRIPE_WEBHOOK_SECRET, else the built-in test provider (TEST MODE, local test chains only:
    create_app refuses it elsewhere, see backend/core/safety.py)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    provider = app.extensions.get("payment_provider")
    if provider is None:
        settings = app.extensions["settings"]
        kind = app.config.get("PAYMENT_PROVIDER") or settings.payment_provider or "test"
        if kind == "stripe":
            provider = StripeProvider(settings.stripe_secret_key, settings.stripe_webhook_secret)
        else:
            provider = TestCardProvider(
                purpose_key_hex(app.config["SECRET_KEY"], TEST_CARD_WEBHOOK),
                "/shop/test-checkout/{order}",
            )
        app.extensions["payment_provider"] = provider
    return provider  # type: ignore[no-any-return]


def shop_service() -> ShopService:
    app = _app()
    return ShopService(
        get_db().session(),
        chain=_chain(app),
        ticket_key=purpose_key_hex(str(app.config["SECRET_KEY"]), TICKET),
    )


def checkin_service(shop: ShopService | None = None) -> CheckInService:
    return CheckInService(get_db().session(), shop or shop_service(), outbox=outbox_service)


def order_service(shop: ShopService | None = None) -> OrderService:
    app = _app()
    session = get_db().session()
    return OrderService(
        session,
        shop or shop_service(),
        chain=_chain(app),
        outbox=outbox_service,
        provider=payment_provider,
        accounts=AccountService(session, lambda: get_vault(app)),
        public_url=app.extensions["settings"].public_url,
    )


def wallet_order_service() -> WalletOrderService:
    app = _app()
    return WalletOrderService(
        get_db().session(),
        order_service(),
        chain=_chain(app),
        outbox=outbox_service,
        faucet_enabled=app.extensions["settings"].faucet != "off",
    )


def card_payment_service() -> CardPaymentService:
    return CardPaymentService(get_db().session(), outbox=outbox_service, provider=payment_provider)


def collection_console() -> CollectionConsole:
    """The staff console's collections, listings, perks and allowlists (backend/shop/console.py)."""
    app = _app()
    return CollectionConsole(
        get_db().session(),
        chain=_chain(app),
        outbox=outbox_service,
        public_url=app.extensions["settings"].public_url,
    )


def gift_service() -> GiftService:
    """Giving and moving cards and tickets of built-in wallets (backend/shop/gifts.py)."""
    app = _app()
    session = get_db().session()
    return GiftService(
        session, accounts=AccountService(session, lambda: get_vault(app)), outbox=outbox_service
    )
