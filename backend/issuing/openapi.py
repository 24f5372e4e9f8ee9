"""OpenAPI path items of the issuing API (routes.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "integer"}}


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    out = {
        "400": error_response(
            "Invalid input (programme, reason, key, rows or file); nothing written."
        ),
        "401": error_response("Not signed in."),
        "403": error_response(
            "Not the town's staff (or, to approve, the same person who created or confirmed it)."
        ),
        "404": error_response("No such town or issuance."),
    }
    out.update({status: error_response(text) for status, text in extra})
    return out


_ROWS = {
    "type": "array",
    "minItems": 1,
    "maxItems": 5000,
    "items": {
        "type": "object",
        "required": ["recipient", "amount"],
        "properties": {
            "recipient": {
                "type": "string",
                "description": "An account's email, a customer code (P + 12 digits), a "
                "printed card code of the town (C + 10) or an address (0x...).",
            },
            "amount": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
            "note": {"type": "string", "maxLength": 300},
        },
    },
}

PATHS = {
    "/api/towns/{slug}/issuances": {
        "get": {
            "summary": "The town's latest issuances of points, newest first (town staff).",
            "parameters": [_SLUG],
            "responses": {"200": json_response("Issuances with their progress."), **_errors()},
        },
        "post": {
            "summary": "Preview an issuance of points to many: each row resolved to an "
            "account or its error. JSON rows, or a CSV file as multipart/form-data (file: "
            "UTF-8 or Shift_JIS, columns recipient, amount[, note]; at most 5,000 rows and "
            "512 KB). Nothing is issued before confirm; the idempotency key makes a repeat "
            "the same issuance.",
            "parameters": [_SLUG],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["rows", "programme_id", "reason", "idempotency_key"],
                            "properties": {
                                "rows": _ROWS,
                                "programme_id": {"type": "integer"},
                                "reason": {"type": "string", "minLength": 1, "maxLength": 200},
                                "idempotency_key": {"type": "string"},
                            },
                        }
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file", "programme_id", "reason", "idempotency_key"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "programme_id": {"type": "integer"},
                                "reason": {"type": "string"},
                                "idempotency_key": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "201": json_response("The previewed issuance with every row."),
                **_errors(("413", "The file is over 512 KB (or the body over 1 MiB).")),
            },
        },
    },
    "/api/towns/{slug}/issuances/{batch_id}": {
        "get": {
            "summary": "One issuance: its state, progress (queued, sent, confirmed, failed) "
            "and a result per row (?rows=0 leaves the rows out).",
            "parameters": [_SLUG, _ID],
            "responses": {"200": json_response("The issuance."), **_errors()},
        }
    },
    "/api/towns/{slug}/issuances/{batch_id}/confirm": {
        "post": {
            "summary": "Confirm a previewed issuance: its issueBatch calls are queued, or it "
            "waits for a second member of staff above the town's four-eyes amount. A repeat "
            "(or many at once) queues nothing more.",
            "parameters": [_SLUG, _ID],
            "requestBody": json_body({"type": "object"}, required=False),
            "responses": {
                "200": json_response("The issuance."),
                **_errors(("409", "Nothing in it can be issued.")),
            },
        }
    },
    "/api/towns/{slug}/issuances/{batch_id}/approve": {
        "post": {
            "summary": "Four eyes: another member of the town's staff approves an issuance "
            "above the four-eyes amount; its issueBatch calls are queued.",
            "parameters": [_SLUG, _ID],
            "requestBody": json_body({"type": "object"}, required=False),
            "responses": {
                "200": json_response("The issuance."),
                **_errors(("409", "The issuance is not waiting for approval.")),
            },
        }
    },
}
