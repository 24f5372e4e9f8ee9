"""OpenAPI path items of /api/v1 (routes.py): the issuing API of the town's services,
authenticated by `Authorization: Bearer <key>` (backend/core/openapi.py gives every /api/v1/
operation the bearer scheme instead of the session and CSRF token)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response
from backend.integrations.issuances import MAX_AMOUNT, MAX_BATCH, MAX_LIST

_UNAUTHORISED = error_response(
    "invalid_api_key: no key, or a wrong, revoked or expired one (WWW-Authenticate: Bearer)."
)

_ISSUANCE_IN = {
    "type": "object",
    "required": ["recipient", "amount", "programme", "reason", "idempotency_key"],
    "properties": {
        "recipient": {
            "type": "string",
            "maxLength": 254,
            "description": "An account's email, a customer code (P + 12 digits), a printed card "
            "code of the town (C + 10) or an address (0x...).",
        },
        "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
        "programme": {"type": "integer", "description": "A programme id the service may use."},
        "reason": {"type": "string", "minLength": 1, "maxLength": 200},
        "idempotency_key": {
            "type": "string",
            "pattern": "^[A-Za-z0-9._:-]{6,100}$",
            "description": "Unique per issuance of the service: sending it again returns the "
            "same issuance; with other values it is refused (409 idempotency_key_reused).",
        },
    },
}

_ISSUANCE = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["pending", "confirmed", "failed"]},
        "idempotency_key": {"type": "string"},
        "recipient": {"type": "string"},
        "amount": {"type": "integer"},
        "programme": {"type": "integer"},
        "reason": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "tx_hash": {"type": ["string", "null"], "description": "Once confirmed on chain."},
        "failure_reason": {"type": ["string", "null"]},
        "replayed": {
            "type": "boolean",
            "description": "true when an earlier request with the same key made it.",
        },
    },
}

_REFUSED = {
    "400": error_response(
        "Bad input, nothing issued (details.field; in a batch details.index names the item): "
        "invalid_input, amount_over_cap, programme_not_allowed, invalid_recipient "
        "(details.invalid lists the bad items)."
    ),
    "401": _UNAUTHORISED,
    "409": error_response(
        "Nothing issued: budget_exceeded (details.period day|month, details.left) or "
        "idempotency_key_reused (the key was used with other values; details.id)."
    ),
}


def _get(summary: str, response: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {"200": json_response(response, schema), "401": _UNAUTHORISED},
        **extra,
    }


_LIST = _get(
    "The service's issuances in id order (after an id, at most `limit`, by status).",
    "A page of issuances.",
    {"type": "object", "properties": {"issuances": {"type": "array", "items": _ISSUANCE}}},
    parameters=[
        {
            "name": "status",
            "in": "query",
            "schema": {"type": "string", "enum": ["pending", "confirmed", "failed"]},
        },
        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST},
        },
    ],
)
_LIST["responses"]["400"] = error_response("invalid_input: a bad status, after or limit.")

PATHS = {
    "/api/v1/service": {
        "get": _get(
            "The calling service: names, programmes, cap, budgets and what is left today and "
            "this month (JST).",
            "The service.",
            {"type": "object"},
        )
    },
    "/api/v1/issuances": {
        "post": {
            "summary": "Issue points to one recipient. Answers at once with the issuance "
            "(pending); it is sent on chain by the worker. Counted against the service's "
            "budgets atomically.",
            "requestBody": json_body(_ISSUANCE_IN),
            "responses": {
                "202": json_response(
                    "The issuance (new, or the earlier one of its key).", _ISSUANCE
                ),
                **_REFUSED,
            },
        },
        "get": _LIST,
    },
    "/api/v1/issuances/batch": {
        "post": {
            "summary": f"Issue to up to {MAX_BATCH:,} recipients in one request, sent on chain "
            "with issueBatch in chunks. All or nothing: one bad item or a passed budget "
            "issues nothing. Items whose key was used before are answered as before.",
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["issuances"],
                    "properties": {
                        "issuances": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": _ISSUANCE_IN,
                        }
                    },
                }
            ),
            "responses": {
                "202": json_response(
                    "Each issuance, in the request's order.",
                    {
                        "type": "object",
                        "properties": {"issuances": {"type": "array", "items": _ISSUANCE}},
                    },
                ),
                **_REFUSED,
            },
        }
    },
    "/api/v1/issuances/{issuance_id}": {
        "get": _get(
            "One of the service's issuances: pending, confirmed (with the transaction) or "
            "failed (with the reason). Another service's issuance is 404.",
            "The issuance.",
            _ISSUANCE,
            parameters=[
                {
                    "name": "issuance_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                }
            ],
        )
    },
}
