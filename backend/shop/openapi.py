"""OpenAPI path items for the shop API and NFT metadata (merged by backend/core/openapi.py)."""

from __future__ import annotations

from backend.core.openapi import error_response, json_body, json_response

_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_CHECKIN = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "code": {"type": "string", "description": "The signed ticket code from the QR."},
        "perk_id": {"type": "integer"},
        "idempotency_key": {"type": "string", "minLength": 8, "maxLength": 100},
    },
}
_REFUSED = "Ticket refused: invalid_ticket, ticket_expired, other_town, transferred, used_up."

PATHS = {
    "/api/shop/towns/{slug}/listings": {
        "get": {
            "summary": "A town's shop: collections with perks and listings (price, payment kind "
            "points|stablecoin|card, remaining supply from the chain, sale window).",
            "parameters": [_SLUG],
            "responses": {"200": json_response("The shop."), "404": error_response("No town.")},
        }
    },
    "/meta/{town}/{collection}/{token_id}": {
        "get": {
            "summary": "OpenSea-compatible metadata of a minted token (tokenURI).",
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": t}}
                for n, t in (("town", "string"), ("collection", "string"), ("token_id", "integer"))
            ],
            "responses": {
                "200": json_response("name, description, image, attributes."),
                "404": error_response("The token has not been minted."),
            },
        }
    },
    "/meta/{town}/{collection}/image": {
        "get": {
            "summary": "The image uploaded for a collection in the staff console (PNG, JPEG or "
            "WebP, its type checked from its bytes); the metadata's `image` points here.",
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in ("town", "collection")
            ],
            "responses": {
                "200": {"description": "The image."},
                "404": error_response("No such collection, or no uploaded image."),
            },
        }
    },
    "/meta/{town}/resident/{token_id}": {
        "get": {
            "summary": "OpenSea-compatible metadata of a resident pass (ResidentPass.tokenURI); "
            "the pass is soulbound (ERC-5192).",
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": t}}
                for n, t in (("town", "string"), ("token_id", "integer"))
            ],
            "responses": {
                "200": json_response("name, description, image, external_url, attributes."),
                "404": error_response("No such town, or the pass does not exist (revoked)."),
            },
        }
    },
    "/api/shop/my/collection": {
        "get": {
            "summary": "The signed-in user's tokens with perks, uses left and a ticket code.",
            "responses": {
                "200": json_response("The tokens."),
                "401": error_response("Not signed in."),
            },
        }
    },
    "/api/shop/tickets/{collection_id}/{token_id}": {
        "get": {
            "summary": "A fresh ticket code for a token the user holds.",
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "integer"}}
                for n in ("collection_id", "token_id")
            ],
            "responses": {
                "200": json_response("The code."),
                "403": error_response("Not your ticket."),
            },
        }
    },
    "/api/shop/towns/{slug}/checkin/lookup": {
        "post": {
            "summary": "Venue staff (VERIFIER): the ticket's holder and uses left.",
            "parameters": [_SLUG],
            "requestBody": json_body(_CHECKIN),
            "responses": {
                "200": json_response("The ticket."),
                "403": error_response("Not a verifier of this town."),
                "409": error_response(_REFUSED),
            },
        }
    },
    "/api/shop/towns/{slug}/checkin": {
        "post": {
            "summary": "Venue staff (VERIFIER): mark one use of a perk (usePerk on chain; "
            "processing until indexed). The same idempotency key returns the first check-in.",
            "parameters": [_SLUG],
            "requestBody": json_body(_CHECKIN),
            "responses": {
                "201": json_response("The check-in (processing)."),
                "400": error_response("Missing key or unknown perk."),
                "403": error_response("Not a verifier of this town."),
                "409": error_response(_REFUSED),
            },
        }
    },
}
