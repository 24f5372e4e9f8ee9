"""Orders JSON API (blueprint "payments") and the card providers' webhooks (signature-checked,
CSRF-exempt)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from backend.accounts.roles import current_user
from backend.core.errors import N_, NotFound, json_object
from backend.shop.orders import order_json
from backend.shop.services import (
    card_payment_service,
    on_test_chain,
    order_service,
    payment_provider,
    wallet_order_service,
)

bp = Blueprint("payments", __name__)


@bp.post("/api/shop/orders")
def place_order():
    data = json_object()
    placed = order_service().place(
        current_user(), data.get("listing_id"), data.get("quantity"), data.get("idempotency_key")
    )
    body = {"order": order_json(placed.order), "redirect_url": placed.redirect_url}
    return jsonify(body), 201 if placed.created else 200


@bp.get("/api/shop/orders/<public_id>")
def get_order(public_id: str):
    return jsonify({"order": order_json(order_service().get(current_user(), public_id))})


@bp.post("/api/shop/wallet-orders/permit")
def wallet_permit():
    data = json_object()
    prepared = wallet_order_service().wallet_permit(
        current_user(), data.get("listing_id"), data.get("quantity"), data.get("address")
    )
    return jsonify(prepared)


@bp.post("/api/shop/wallet-orders/forward-request")
def wallet_forward_request():
    data = json_object()
    prepared = wallet_order_service().wallet_forward_request(
        current_user(),
        data.get("listing_id"),
        data.get("quantity"),
        data.get("permit"),
        data.get("address"),
    )
    return jsonify(prepared)


@bp.post("/api/shop/wallet-orders")
def place_wallet_order():
    data = json_object()
    placed = wallet_order_service().place_wallet(
        current_user(),
        data.get("listing_id"),
        data.get("quantity"),
        data.get("idempotency_key"),
        data.get("permit"),
        data.get("forward_request"),
        data.get("address"),
    )
    body = {"order": order_json(placed.order), "redirect_url": placed.redirect_url}
    return jsonify(body), 201 if placed.created else 200


@bp.post("/api/shop/faucet")
def faucet():
    tx = wallet_order_service().faucet(current_user())
    return jsonify({"status": "processing", "outbox_tx_id": tx.id}), 202


@bp.post("/api/payments/webhooks/<provider_name>")
def webhook(provider_name: str):
    provider = payment_provider()
    if provider.name != provider_name or (provider.name == "test" and not on_test_chain()):
        # The test provider's webhook exists only on local test chains.
        raise NotFound(N_("There is no such payment provider."))
    result = card_payment_service().handle_webhook(provider, request.get_data(), request.headers)
    return jsonify({"result": result})


@bp.record_once
def _exempt_webhook(state: Any) -> None:
    # Providers cannot send our CSRF token; the webhook's signature authenticates it instead.
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(f"{__name__}.webhook")
