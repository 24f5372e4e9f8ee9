"""OpenAPI path items for the notifications API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response
from backend.notifications.models import CHANNELS, KINDS

_NOTIFICATION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "title": {"type": "string", "description": "In the request's language."},
        "body": {"type": "string", "description": "In the request's language."},
        "link": {"type": "string", "description": "The page of this platform it is about."},
        "created_at": {"type": "string", "format": "date-time"},
        "read_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
_UNREAD = {
    "type": "integer",
    "description": "Unread notifications, counted up to 100 (a badge shows 99+ above 99).",
}
_SWITCHES = {
    "type": "object",
    "properties": {
        "switches": {
            "type": "object",
            "description": "Per kind, per channel: true when on (the default).",
            "properties": {
                k: {"type": "object", "properties": {c: {"type": "boolean"} for c in CHANNELS}}
                for k in KINDS
            },
        },
        "email_verified": {
            "type": "boolean",
            "description": "Mail goes to a verified address only.",
        },
    },
}
_NOT_SIGNED_IN = error_response("Not signed in.")

PATHS: dict[str, Any] = {
    "/api/me/notifications": {
        "get": {
            "summary": "The signed-in person's notifications, newest first, 50 a page, and how "
            "many are unread.",
            "parameters": [
                {
                    "name": "before",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer"},
                    "description": "The `older` of the previous page: the page after it.",
                }
            ],
            "responses": {
                "200": json_response(
                    "The page; `older` is null on the last one.",
                    {
                        "type": "object",
                        "properties": {
                            "notifications": {"type": "array", "items": _NOTIFICATION},
                            "older": {"type": ["integer", "null"]},
                            "unread": _UNREAD,
                        },
                    },
                ),
                "400": error_response("`before` is not an id."),
                "401": _NOT_SIGNED_IN,
            },
        }
    },
    "/api/me/notifications/{nid}/read": {
        "post": {
            "summary": "Mark one notification read (again is no change).",
            "parameters": [
                {"name": "nid", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": json_response(
                    "Read; the unread count after.",
                    {"type": "object", "properties": {"unread": _UNREAD}},
                ),
                "401": _NOT_SIGNED_IN,
                "404": error_response("No such notification of this person."),
            },
        }
    },
    "/api/me/notifications/read-all": {
        "post": {
            "summary": "Mark every notification of the signed-in person read.",
            "responses": {
                "200": json_response(
                    "How many were marked, and the unread count after (0).",
                    {
                        "type": "object",
                        "properties": {"marked": {"type": "integer"}, "unread": _UNREAD},
                    },
                ),
                "401": _NOT_SIGNED_IN,
            },
        }
    },
    "/api/me/notifications/settings": {
        "get": {
            "summary": "The person's switches: each kind of notification, in the app and by mail.",
            "responses": {
                "200": json_response("The switches.", _SWITCHES),
                "401": _NOT_SIGNED_IN,
            },
        },
        "patch": {
            "summary": "Turn the named switches on or off; the others keep their state.",
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["switches"],
                    "properties": {
                        "switches": {
                            "type": "object",
                            "minProperties": 1,
                            "description": "`<kind>.<channel>` (e.g. `charge_paid.email`): "
                            "true for on, false for off.",
                            "additionalProperties": {"type": "boolean"},
                        }
                    },
                }
            ),
            "responses": {
                "200": json_response("The switches after the change.", _SWITCHES),
                "400": error_response(
                    "No switch named, an unknown one, or a value not a boolean; nothing changed."
                ),
                "401": _NOT_SIGNED_IN,
            },
        },
    },
}
