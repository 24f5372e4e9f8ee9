"""OpenAPI path items for orders, the test-yen faucet and card webhooks."""

from __future__ import annotations

from backend.core.openapi import error_response, json_body, json_response

_ORDER = {
    "type": "object",
    "required": ["listing_id", "quantity", "idempotency_key"],
    "properties": {
        "listing_id": {"type": "integer"},
        "quantity": {"type": "integer", "minimum": 1},
        "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 100},
    },
}

PATHS = {
    "/api/shop/orders": {
        "post": {
            "summary": "Buy a listing. Points / test yen: permit + buy relayed for the user "
            "(status processing). Card: status pending_payment and the checkout redirect_url. "
            "The same idempotency key returns the first order (200).",
            "requestBody": json_body(_ORDER),
            "responses": {
                "201": json_response("The order and where to go next."),
                "200": json_response("The order placed earlier with this key."),
                "400": error_response("Bad quantity or key; nothing changed."),
                "401": error_response("Not signed in."),
                "404": error_response("No such listing."),
                "409": error_response(
                    "not_on_sale, sold_out, wallet_cap_exceeded, insufficient_balance, or the "
                    "key was used for another order; nothing changed."
                ),
            },
        }
    },
    "/api/shop/orders/{public_id}": {
        "get": {
            "summary": "An order's status: pending_payment, processing, completed, failed, "
            "refunded or declined.",
            "parameters": [
                {"name": "public_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": json_response("The order."),
                "404": error_response("No such order of yours."),
            },
        }
    },
    "/api/shop/faucet": {
        "post": {
            "summary": "TEST MODE only: mint 10,000 test yen to the user's account (once a day).",
            "responses": {
                "202": json_response("Minting."),
                "409": error_response("Not a test chain."),
            },
        }
    },
    "/api/payments/webhooks/{provider_name}": {
        "post": {
            "summary": "Card provider webhook (no CSRF; signature checked: Stripe-Signature or "
            "X-Test-Signature). An event delivered twice is applied once.",
            "parameters": [
                {
                    "name": "provider_name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["test", "stripe"]},
                }
            ],
            "requestBody": json_body({"type": "object"}),
            "responses": {
                "200": json_response("processed, duplicate or ignored."),
                "400": error_response("Bad signature; nothing changed."),
            },
        }
    },
}
