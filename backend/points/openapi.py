"""OpenAPI path items for the points API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_PID = {"name": "programme_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_KEY = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{8,64}$",
    "description": "Idempotency key: the same key twice gives one change and the first answer.",
}
_PROGRAMME = {
    "type": "object",
    "required": ["name_ja", "name_en", "expiry_days", "idempotency_key"],
    "properties": {
        "kind": {
            "type": "string",
            "description": "Create only: a kind of backend/points/programmes.py PRESETS other "
            "than welcome (a town has one welcome programme).",
        },
        "name_ja": {"type": "string", "maxLength": 120},
        "name_en": {"type": "string", "maxLength": 120},
        "welcome_amount": {
            "type": "integer",
            "minimum": 1,
            "maximum": 1000000,
            "description": "Welcome kind only: the points one welcome grant gives.",
        },
        "cap_per_person_day": {"type": ["integer", "null"], "minimum": 1},
        "cap_per_town_day": {"type": ["integer", "null"], "minimum": 1},
        "expiry_days": {
            "type": "integer",
            "enum": [30, 60, 90, 180, 365, 0],
            "description": "0: never. A paid kind (points bought for money) is limited to "
            "1-180 days (Payment Services Act, the 6-month rule).",
        },
        "active": {"type": "boolean"},
        "idempotency_key": _KEY,
    },
}


def _errors() -> dict[str, Any]:
    return {
        "400": error_response(
            "Invalid input (a name, an amount or cap out of range, an expiry outside the "
            "presets, a paid kind beyond 180 days); nothing changed."
        ),
        "401": error_response("Not signed in."),
        "403": error_response("Not staff of this town."),
        "404": error_response("No such town or programme, or the town has no points."),
    }


PATHS = {
    "/api/points": {
        "get": {
            "summary": "The signed-in user's points in every town: confirmed balance, points "
            "still arriving or being paid, each lot with what is left and its use-by date, and "
            "the history (issued, paid, received, redeemed, expired).",
            "security": [{"session": []}],
            "responses": {
                "200": json_response("Points per town."),
                "401": error_response("Not signed in."),
            },
        }
    },
    "/api/towns/{slug}/programmes": {
        "get": {
            "summary": "The town's points programmes (town staff): names, welcome amount, daily "
            "caps, expiry, active, and the state of their last change on chain (queued, "
            "confirmed, failed).",
            "parameters": [_SLUG],
            "responses": {"200": json_response("The programmes."), **_errors()},
        },
        "post": {
            "summary": "Create a programme (town staff); it is set on chain (setProgramme by "
            "the town_settings key) through the outbox and shows queued until confirmed.",
            "parameters": [_SLUG],
            "requestBody": json_body(_PROGRAMME),
            "responses": {"201": json_response("The programme and the change."), **_errors()},
        },
    },
    "/api/towns/{slug}/programmes/{programme_id}": {
        "put": {
            "summary": "Edit a programme (town staff). A change of expiry or active goes on "
            "chain through the outbox; names, caps and the welcome amount do not.",
            "parameters": [_SLUG, _PID],
            "requestBody": json_body(_PROGRAMME),
            "responses": {"200": json_response("The programme and the change."), **_errors()},
        },
    },
    "/api/towns/{slug}/transfer-policy": {
        "get": {
            "summary": "The town's transfer policy on chain (open or merchants_only) and the "
            "staff's last change with its state (town staff).",
            "parameters": [_SLUG],
            "responses": {"200": json_response("The transfer policy."), **_errors()},
        },
        "put": {
            "summary": "Set the transfer policy (town staff): setTransferPolicy by the "
            "town_settings key through the outbox; queued until confirmed.",
            "parameters": [_SLUG],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["policy", "idempotency_key"],
                    "properties": {
                        "policy": {"type": "string", "enum": ["open", "merchants_only"]},
                        "idempotency_key": _KEY,
                    },
                }
            ),
            "responses": {"200": json_response("The transfer policy."), **_errors()},
        },
    },
}
