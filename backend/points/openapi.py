"""OpenAPI path items for the points API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from backend.core.openapi import error_response, json_response

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
}
