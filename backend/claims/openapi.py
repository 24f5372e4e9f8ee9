"""OpenAPI path items for the claims API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_response

_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}

PATHS: dict[str, Any] = {
    "/api/towns/{slug}/claims": {
        "get": {
            "summary": "Points the town issued to e-mail addresses with no verified account "
            "that nobody has claimed yet: claims, addresses and points as issued (town "
            "staff). Points nobody claims expire on chain. `stuck_people` and "
            "`stuck_points`: claimed points the platform could not move to their owners "
            "after 3 failed transfers (an operator alert is raised).",
            "parameters": [_SLUG],
            "responses": {
                "200": json_response("What is waiting."),
                "401": error_response("Not signed in."),
                "403": error_response("Not staff of this town."),
                "404": error_response("No such town."),
            },
        },
    },
    "/api/me/claims": {
        "get": {
            "summary": "Per town, the points the signed-in person claimed (by verifying their "
            "address) that are not in their wallet yet.",
            "responses": {
                "200": json_response("What is on its way."),
                "401": error_response("Not signed in."),
            },
        },
    },
}
