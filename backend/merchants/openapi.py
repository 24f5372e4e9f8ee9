"""OpenAPI path items for the merchants API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_SESSION = [{"session": []}]
_AMOUNT = {"type": "integer", "minimum": 1, "description": "Whole points (no decimals)."}
_KEY = {
    "type": "string",
    "description": "Idempotency key: the same key twice gives one effect and the first answer.",
}
_MERCHANT_ID = {
    "name": "merchant_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer"},
}
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_EMAIL_BODY = {
    "type": "object",
    "required": ["email"],
    "properties": {"email": {"type": "string", "maxLength": 254}},
}
_CODE = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    out = {
        "400": error_response(
            "Invalid input (e.g. amount not a positive whole number); nothing changed."
        ),
        "401": error_response("Not signed in."),
        "403": error_response("Not staff of this merchant or town."),
        "404": error_response("No such merchant, charge or town."),
    }
    out.update({status: error_response(text) for status, text in extra})
    return out


PATHS = {
    "/api/towns/{slug}/merchants": {
        "post": {
            "summary": "Register a shop in the town (town staff); it is registered on chain "
            "through the outbox.",
            "security": _SESSION,
            "parameters": [_SLUG],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["name_ja", "name_en"],
                    "properties": {"name_ja": {"type": "string"}, "name_en": {"type": "string"}},
                }
            ),
            "responses": {"201": json_response("The merchant."), **_errors()},
        },
        "get": {
            "summary": "The town's shops with their status (registering until the chain "
            "confirms, then active), for town staff.",
            "security": _SESSION,
            "parameters": [_SLUG],
            "responses": {"200": json_response("The merchants."), **_errors()},
        },
    },
    "/api/merchants/{merchant_id}": {
        "get": {
            "summary": "A merchant (its staff only).",
            "security": _SESSION,
            "parameters": [_MERCHANT_ID],
            "responses": {"200": json_response("The merchant."), **_errors()},
        }
    },
    "/api/merchants/{merchant_id}/charges": {
        "post": {
            "summary": "Create a charge the customer pays by opening its QR code (/pay/{code}).",
            "security": _SESSION,
            "parameters": [_MERCHANT_ID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["amount", "idempotency_key"],
                    "properties": {"amount": _AMOUNT, "idempotency_key": _KEY},
                }
            ),
            "responses": {"201": json_response("The charge with its code."), **_errors()},
        }
    },
    "/api/merchants/{merchant_id}/charges/{charge_id}": {
        "get": {
            "summary": "A charge's status (pending, paying, paid, expired, failed, cancelled), "
            "polled by the merchant's screen.",
            "security": _SESSION,
            "parameters": [
                _MERCHANT_ID,
                {
                    "name": "charge_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
            ],
            "responses": {"200": json_response("The charge."), **_errors()},
        }
    },
    "/api/merchants/{merchant_id}/charges/{charge_id}/cancel": {
        "post": {
            "summary": "The shop's staff cancel a charge nobody has started to pay (audited; "
            "again: the same cancelled charge). 409 charge_not_cancellable when it is being "
            "paid, paid, failed or expired.",
            "security": _SESSION,
            "parameters": [
                _MERCHANT_ID,
                {
                    "name": "charge_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
            ],
            "responses": {
                "200": json_response("The cancelled charge."),
                **_errors(("409", "Being paid, paid, failed or expired: nothing changed.")),
            },
        }
    },
    "/api/merchants/{merchant_id}/charge-customer": {
        "post": {
            "summary": "Charge a customer by their single-use code (pays at once, 201) or start "
            "a printed card's charge (202 with the PIN pad; the resident types the PIN there). "
            "Audit-logged with the staff member who helped.",
            "security": _SESSION,
            "parameters": [_MERCHANT_ID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["amount", "customer_code", "idempotency_key"],
                    "properties": {
                        "amount": _AMOUNT,
                        "customer_code": {"type": "string"},
                        "pin": {
                            "type": "string",
                            "description": "Refused (400 pin_not_accepted): the shop never "
                            "sends a card's PIN.",
                        },
                        "idempotency_key": _KEY,
                    },
                }
            ),
            "responses": {
                "201": json_response("The charge, paying."),
                "202": json_response("A card charge waiting for the PIN: pin_pad_url."),
                **_errors(
                    (
                        "409",
                        "Code already used (customer_code_used), daily limit reached, "
                        "not enough points.",
                    ),
                    ("423", "The card is locked at this shop."),
                ),
            },
        }
    },
    "/api/pay/{code}": {
        "get": {
            "summary": "What the customer is asked to pay: shop and amount.",
            "parameters": [_CODE],
            "responses": {"200": json_response("The charge and its shop."), **_errors()},
        },
        "post": {
            "summary": "Pay the charge with the signed-in customer's points (gasless); with "
            "points_town, with that partner town's points.",
            "security": _SESSION,
            "parameters": [_CODE],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "points_town": {
                                    "type": "string",
                                    "description": "A partner town's slug (default: the "
                                    "shop's town).",
                                }
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_response("The charge, paying until the transfer is confirmed."),
                **_errors(
                    (
                        "409",
                        "Already paid, expired, not enough points, or the towns are not partners.",
                    )
                ),
            },
        },
    },
    "/api/merchants/{merchant_id}/sales": {
        "get": {
            "summary": "The merchant's sales (confirmed transfers to its account) and balance.",
            "security": _SESSION,
            "parameters": [_MERCHANT_ID],
            "responses": {"200": json_response("Sales."), **_errors()},
        }
    },
    "/api/merchants/{merchant_id}/redeem": {
        "post": {
            "summary": "Redeem points for yen: burned on chain, then queued for the town's "
            "settlement.",
            "security": _SESSION,
            "parameters": [_MERCHANT_ID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["amount", "idempotency_key"],
                    "properties": {"amount": _AMOUNT, "idempotency_key": _KEY},
                }
            ),
            "responses": {
                "201": json_response("The redemption."),
                **_errors(("409", "More than the merchant's balance.")),
            },
        }
    },
    "/api/merchants/{merchant_id}/settlements": {
        "get": {
            "summary": "The merchant's settlements (requested, settled with bank reference).",
            "security": _SESSION,
            "parameters": [_MERCHANT_ID],
            "responses": {"200": json_response("Settlements."), **_errors()},
        }
    },
    "/api/towns/{slug}/settlements": {
        "get": {
            "summary": "The town's settlement queue (town staff).",
            "security": _SESSION,
            "parameters": [_SLUG],
            "responses": {"200": json_response("Settlements."), **_errors()},
        }
    },
    "/api/settlements/{settlement_id}/settle": {
        "post": {
            "summary": "Mark an approved settlement paid with its bank-transfer reference (town "
            "staff; compare-and-set: of concurrent calls one wins; audit-logged).",
            "security": _SESSION,
            "parameters": [
                {
                    "name": "settlement_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                }
            ],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["bank_reference"],
                    "properties": {"bank_reference": {"type": "string"}},
                }
            ),
            "responses": {
                "200": json_response("The settlement, settled."),
                **_errors(("409", "Not approved yet, failed, or already settled.")),
            },
        }
    },
    "/api/towns/{slug}/people/shops": {
        "get": {
            "summary": "The town's shops with their staff (town staff and the town's admin).",
            "security": _SESSION,
            "parameters": [_SLUG],
            "responses": {"200": json_response("The shops and their staff."), **_errors()},
        }
    },
    "/api/towns/{slug}/people/shops/{merchant_id}": {
        "post": {
            "summary": "Make the account with this e-mail staff of one of the town's shops "
            "(town staff and the town's admin); audited as merchant.staff_add, once.",
            "security": _SESSION,
            "parameters": [_SLUG, _MERCHANT_ID],
            "requestBody": json_body(_EMAIL_BODY),
            "responses": {"201": json_response("The shop and its staff."), **_errors()},
        }
    },
    "/api/towns/{slug}/people/shops/{merchant_id}/remove": {
        "post": {
            "summary": "Take the account with this e-mail off one of the town's shops (town "
            "staff and the town's admin); audited as merchant.staff_remove when a row went.",
            "security": _SESSION,
            "parameters": [_SLUG, _MERCHANT_ID],
            "requestBody": json_body(_EMAIL_BODY),
            "responses": {
                "200": json_response(
                    "The shop and its staff; changed false when they were not its staff."
                ),
                **_errors(),
            },
        }
    },
}
