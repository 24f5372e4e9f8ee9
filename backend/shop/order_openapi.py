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
_SIG = {"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$"}
_PERMIT = {
    "type": "object",
    "required": ["deadline", "nonce", "signature"],
    "description": "The permit as prepared (deadline, nonce) and the wallet's signature of it.",
    "properties": {
        "deadline": {"type": "integer"},
        "nonce": {"type": "integer"},
        "signature": _SIG,
    },
}
_WALLET = {
    "type": "object",
    "required": ["listing_id", "quantity"],
    "properties": {
        "listing_id": {"type": "integer"},
        "quantity": {"type": "integer", "minimum": 1},
        "address": {
            "type": "string",
            "description": "The user's external (SIWE) address; default: their first one.",
        },
    },
}
_WALLET_ERRORS = {
    "400": error_response(
        "Bad quantity or key, not a wallet-payable listing, no wallet (no_wallet), or a "
        "signature that does not recover to the user's address (bad_signature); nothing changed."
    ),
    "401": error_response("Not signed in."),
    "404": error_response("No such listing."),
    "409": error_response(
        "not_on_sale, sold_out, wallet_cap_exceeded, insufficient_balance, stale_signature "
        "(prepare again); nothing changed."
    ),
}

PATHS = {
    "/api/shop/wallet-orders/permit": {
        "post": {
            "summary": "Wallet purchase, step 1: the EIP-712 ERC-20 permit (test yen to "
            "PrimarySale) the user's external wallet signs with eth_signTypedData_v4. "
            "Changes nothing.",
            "requestBody": json_body(_WALLET),
            "responses": {
                "200": json_response("address, amount, permit {deadline, nonce}, typed_data."),
                **_WALLET_ERRORS,
            },
        }
    },
    "/api/shop/wallet-orders/forward-request": {
        "post": {
            "summary": "Wallet purchase, step 2: with the signed permit, the ERC-2771 forward "
            "request (FurusatoForwarder typed data) for PrimarySale.buyWithPermit that the "
            "wallet signs next. Changes nothing.",
            "requestBody": json_body(
                {
                    **_WALLET,
                    "required": ["listing_id", "quantity", "permit"],
                    "properties": {**_WALLET["properties"], "permit": _PERMIT},
                }
            ),  # fmt: skip
            "responses": {
                "200": json_response("forward_request (its JSON) and typed_data."),
                **_WALLET_ERRORS,
            },
        }
    },
    "/api/shop/wallet-orders": {
        "post": {
            "summary": "Wallet purchase, step 3: place the order with both signatures. They "
            "must recover to the user's external address and be exactly this purchase; the "
            "forward request is relayed (no gas for the user), status processing until the "
            "mint is indexed. The same idempotency key returns the first order (200).",
            "requestBody": json_body(
                {
                    **_WALLET,
                    "required": [
                        "listing_id",
                        "quantity",
                        "idempotency_key",
                        "permit",
                        "forward_request",
                    ],
                    "properties": {
                        **_WALLET["properties"],
                        "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 100},
                        "permit": _PERMIT,
                        "forward_request": {
                            "type": "object",
                            "description": "The forward_request from step 2 with its "
                            '"signature" added.',
                        },
                    },
                }
            ),  # fmt: skip
            "responses": {
                "201": json_response("The order (processing) and redirect_url."),
                "200": json_response("The order placed earlier with this key."),
                **_WALLET_ERRORS,
            },
        }
    },
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
            "summary": "TEST MODE only: mint 10,000 test yen to the user's built-in account, "
            "or to their wallet's address if they signed in with one (once a day).",
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
