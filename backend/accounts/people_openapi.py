"""OpenAPI path items for the town's people (backend/accounts/people_routes.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_ROLE = {
    "type": "string",
    "enum": ["admin", "staff", "verifier", "data"],
    "description": "admin: appoints the others and does what staff do; staff: municipal staff; "
    "verifier: venue staff (ticket check-in); data: data staff, the only ones who export "
    "personal or anonymised data.",
}
_CHANGE_BODY = {
    "type": "object",
    "required": ["email", "role"],
    "properties": {
        "email": {"type": "string", "maxLength": 254},
        "role": _ROLE,
        "idempotency_key": {
            "type": "string",
            "maxLength": 64,
            "description": "A request key: the same key twice in a town acts once.",
        },
    },
}
_CHANGE = {
    "type": "object",
    "properties": {
        "change": {
            "type": "object",
            "properties": {
                "user_id": {"type": "integer"},
                "email": {"type": "string"},
                "role": _ROLE,
                "changed": {
                    "type": "boolean",
                    "description": "False for a repeat: nothing was written.",
                },
            },
        }
    },
}


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    out = {
        "400": error_response("Invalid e-mail, role or key; nothing changed."),
        "401": error_response("Not signed in."),
        "403": error_response("Not the town's admin (or, to list, not its staff)."),
        "404": error_response("No such town, or no account with this e-mail; nothing changed."),
    }
    out.update({status: error_response(text) for status, text in extra})
    return out


PATHS = {
    "/api/towns/{slug}/people": {
        "get": {
            "summary": "Everyone holding a role in the town, per role (town staff and admins).",
            "parameters": [_SLUG],
            "responses": {"200": json_response("The town's people per role."), **_errors()},
        },
        "post": {
            "summary": "Appoint the account with this e-mail to a role in the town (the town's "
            "admin only); audited as town.role.grant.",
            "parameters": [_SLUG],
            "requestBody": json_body(_CHANGE_BODY),
            "responses": {
                "201": json_response("Appointed.", _CHANGE),
                "200": json_response("They already held the role; nothing written.", _CHANGE),
                **_errors(),
            },
        },
    },
    "/api/towns/{slug}/people/remove": {
        "post": {
            "summary": "Remove a role in the town from the account with this e-mail (the town's "
            "admin only); audited as town.role.revoke. The last admin cannot be removed.",
            "parameters": [_SLUG],
            "requestBody": json_body(_CHANGE_BODY),
            "responses": {
                "200": json_response("Removed, or nobody held it (changed false).", _CHANGE),
                **_errors(("409", "This is the town's last admin; appoint another first.")),
            },
        }
    },
}
