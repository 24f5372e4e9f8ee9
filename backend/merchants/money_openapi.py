"""OpenAPI path items of the money-path API (money_routes.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_SESSION: list[dict[str, list[str]]] = [{"session": []}]


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    out = {
        "400": error_response("Invalid input; nothing changed."),
        "401": error_response("Not signed in."),
        "403": error_response("Not allowed for this account (town staff only, or not the shop)."),
        "404": error_response("No such town, shop, card or settlement."),
    }
    out.update({status: error_response(text) for status, text in extra})
    return out


_BANK = {
    "bank_code": {"type": "string", "pattern": "^[0-9]{4}$"},
    "bank_name": {"type": "string", "description": "Katakana, at most 15."},
    "branch_code": {"type": "string", "pattern": "^[0-9]{3}$"},
    "branch_name": {"type": "string", "description": "Katakana, at most 15."},
    "account_type": {"type": "string", "enum": ["1", "2", "4"]},
    "account_number": {"type": "string", "pattern": "^[0-9]{1,7}$"},
}

PATHS = {
    "/api/me/customer-codes": {
        "post": {
            "summary": "A new single-use code for the signed-in customer: pays one shop, once, "
            "for one amount, within a few minutes.",
            "security": _SESSION,
            "responses": {
                "201": json_response("The code and its expiry."),
                "401": error_response("Not signed in."),
            },
        }
    },
    "/api/me/charges": {
        "get": {
            "summary": "Every charge taken from the signed-in customer, from the moment it is "
            "taken, with the shop and how it was paid.",
            "security": _SESSION,
            "responses": {
                "200": json_response("Charges, newest first."),
                "401": error_response("Not signed in."),
            },
        }
    },
    "/api/pin-pad/{token}": {
        "post": {
            "summary": "The resident's PIN from the PIN pad of a card charge (shop staff's "
            "session). Wrong PINs are counted per card and shop.",
            "security": _SESSION,
            "parameters": [_TOKEN],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["pin"],
                    "properties": {"pin": {"type": "string", "pattern": "^[0-9]{6}$"}},
                }
            ),
            "responses": {
                "200": json_response("The charge, paying."),
                **_errors(
                    ("409", "Already paid, expired, daily limit, or not enough points."),
                    ("423", "The card is locked at this shop."),
                ),
            },
        }
    },
    "/api/cards/{card_id}/unlock": {
        "post": {
            "summary": "Town staff unlock a printed card at every shop (audit-logged).",
            "security": _SESSION,
            "parameters": [_id("card_id")],
            "responses": {"200": json_response("The card."), **_errors()},
        }
    },
    "/api/towns/{slug}/money-settings": {
        "get": {
            "summary": "The town's daily limits and four-eyes amount (town staff).",
            "security": _SESSION,
            "parameters": [_SLUG],
            "responses": {"200": json_response("Settings."), **_errors()},
        },
        "post": {
            "summary": "Set the town's daily limits and four-eyes amounts (settlements; points "
            "issued by staff) (town staff; audit-logged). A raise of a four-eyes amount waits "
            "in `pending` (202) until another member of staff sets the same amount; lowering "
            "applies at once.",
            "security": _SESSION,
            "parameters": [_SLUG],
            "requestBody": json_body(
                {
                    "type": "object",
                    "properties": {
                        k: {"type": "integer", "minimum": 1, "maximum": 10**9}
                        for k in (
                            "customer_daily_limit",
                            "card_daily_limit",
                            "four_eyes_amount",
                            "issue_four_eyes_amount",
                        )
                    },
                }
            ),
            "responses": {
                "200": json_response("Settings (and raises still pending)."),
                "202": json_response("A raise waits for a second member of staff (pending)."),
                **_errors(),
            },
        },
    },
    "/api/towns/{slug}/bank-account": {
        "post": {
            "summary": "Set the town's own account, the originator of transfer files.",
            "security": _SESSION,
            "parameters": [_SLUG],
            "requestBody": json_body(
                {
                    "type": "object",
                    "properties": {
                        **_BANK,
                        "originator_code": {"type": "string", "pattern": "^[0-9]{10}$"},
                        "originator_name": {"type": "string"},
                    },
                }
            ),
            "responses": {"200": json_response("Saved."), **_errors()},
        }
    },
    "/api/merchants/{merchant_id}/bank-account": {
        "get": {
            "summary": "A shop's bank account (town staff only).",
            "security": _SESSION,
            "parameters": [_id("merchant_id")],
            "responses": {"200": json_response("The account or null."), **_errors()},
        },
        "post": {
            "summary": "Set a shop's bank account (town staff only; audit-logged).",
            "security": _SESSION,
            "parameters": [_id("merchant_id")],
            "requestBody": json_body(
                {
                    "type": "object",
                    "properties": {**_BANK, "holder_name": {"type": "string"}},
                }
            ),
            "responses": {"200": json_response("The account."), **_errors()},
        },
    },
    "/api/settlements/{settlement_id}/approve": {
        "post": {
            "summary": "Approve a requested settlement (town staff). Above the town's four-eyes "
            "amount a second, different member of staff must approve too.",
            "security": _SESSION,
            "parameters": [_id("settlement_id")],
            "responses": {
                "200": json_response("The settlement."),
                **_errors(("409", "Not requested, or the same person approving twice.")),
            },
        }
    },
    "/api/towns/{slug}/settlements/transfer-file": {
        "post": {
            "summary": "The 全銀協 総合振込 file (Shift_JIS, 120-byte records) for approved "
            "settlements (town staff; audit-logged).",
            "security": _SESSION,
            "parameters": [_SLUG],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["transfer_date"],
                    "properties": {
                        "transfer_date": {"type": "string", "format": "date"},
                        "settlement_ids": {"type": "array", "items": {"type": "integer"}},
                    },
                }
            ),
            "responses": {
                "200": {"description": "The file (text/plain; charset=Shift_JIS)."},
                **_errors(("409", "Nothing approved, or a bank account is missing.")),
            },
        }
    },
}
