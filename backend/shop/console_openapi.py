"""OpenAPI path items of the staff console's collections (backend/shop/console_routes.py)."""

from __future__ import annotations

from typing import Any

from backend.core.openapi import error_response, json_body, json_response

_BASE = "/api/towns/{slug}/admin/collections"
_SLUG = {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}
_CID = {"name": "collection_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_LID = {"name": "listing_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_KEY = {"type": "string", "minLength": 8, "maxLength": 100}
_ERRORS = {
    "400": error_response("Bad input (a field named in details); nothing was written."),
    "401": error_response("Not signed in."),
    "403": error_response("Not the town's staff."),
    "404": error_response("No such town, collection or listing."),
}


def _errors(*extra: tuple[str, str]) -> dict[str, Any]:
    return {**_ERRORS, **{code: error_response(text) for code, text in extra}}


_COLLECTION = {
    "type": "object",
    "required": ["idempotency_key", "category", "slug", "symbol", "name_ja", "name_en"],
    "properties": {
        "idempotency_key": _KEY,
        "category": {"type": "string", "description": "A key of backend/shop/categories.py."},
        "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,39}$"},
        "symbol": {"type": "string", "pattern": "^[A-Z0-9]{2,10}$"},
        "name_ja": {"type": "string", "maxLength": 120},
        "name_en": {"type": "string", "maxLength": 120},
        "description_ja": {"type": "string", "maxLength": 2000},
        "description_en": {"type": "string", "maxLength": 2000},
        "max_supply": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "royalty_bps": {"type": "integer", "minimum": 0, "maximum": 1000},
        "soulbound": {"type": "boolean"},
        "votes": {
            "type": "boolean",
            "description": "Refused when true (400 votes_not_allowed): only the collection the "
            "card chamber was deployed with carries votes (ADR 0014).",
        },
        "image_base64": {
            "type": "string",
            "description": "PNG, JPEG or WebP (checked from its bytes), at most 512 KB.",
        },
    },
}
_LISTING = {
    "type": "object",
    "required": ["idempotency_key", "payment_kind", "price", "supply", "wallet_cap"],
    "properties": {
        "idempotency_key": _KEY,
        "payment_kind": {"enum": ["points", "stablecoin", "card"]},
        "price": {"type": "integer", "minimum": 1},
        "supply": {"type": "integer", "minimum": 1},
        "wallet_cap": {"type": "integer", "minimum": 1, "maximum": 100},
        "starts_at": {"type": "string", "description": "ISO date-time (JST without offset)."},
        "ends_at": {"type": "string"},
        "allowlist_only": {"type": "boolean"},
        "allowlist": {"type": "array", "items": {"type": "string"}},
    },
}
_PERK = {
    "type": "object",
    "required": ["idempotency_key", "perk_id", "name_ja", "name_en", "uses_per_token"],
    "properties": {
        "idempotency_key": _KEY,
        "perk_id": {"type": "integer", "minimum": 1, "maximum": 1000},
        "name_ja": {"type": "string"},
        "name_en": {"type": "string"},
        "uses_per_token": {"type": "integer", "minimum": 0, "maximum": 1000},
        "valid_until": {"type": ["string", "null"]},
    },
}

PATHS = {
    _BASE: {
        "get": {
            "summary": "The town's collections (town staff).",
            "parameters": [_SLUG],
            "responses": {"200": json_response("The collections."), **_errors()},
        },
        "post": {
            "summary": "Create a collection: createCollection is queued for the `collections` "
            "key, which sets it up and hands it to the town's timelock (ADR 0014). The same "
            "idempotency_key returns the first collection.",
            "parameters": [_SLUG],
            "requestBody": json_body(_COLLECTION),
            "responses": {
                "201": json_response("The collection (status creating)."),
                **_errors(("409", "The town already has a collection with this slug.")),
            },
        },
    },
    _BASE + "/{collection_id}": {
        "get": {
            "summary": "A collection with its on-chain calls (queued -> confirmed), listings "
            "(allowlist size, vouchers signed) and perks.",
            "parameters": [_SLUG, _CID],
            "responses": {"200": json_response("The collection."), **_errors()},
        }
    },
    _BASE + "/{collection_id}/listings": {
        "post": {
            "summary": "List the collection on the town's PrimarySale (the `catalogue` key, local "
            "chains only), optionally for an allowlist of e-mails or addresses.",
            "parameters": [_SLUG, _CID],
            "requestBody": json_body(_LISTING),
            "responses": {
                "201": json_response("The listing."),
                **_errors(
                    (
                        "409",
                        "listing_needs_vote (no listing key on this chain: the town's vote) "
                        "or collection_not_ready.",
                    )
                ),
            },
        }
    },
    _BASE + "/{collection_id}/perks": {
        "post": {
            "summary": "Add or change a perk: setPerk by the `collections` key (PERK_ADMIN_ROLE).",
            "parameters": [_SLUG, _CID],
            "requestBody": json_body(_PERK),
            "responses": {"200": json_response("The perk."), **_errors()},
        }
    },
    _BASE + "/{collection_id}/listings/{listing_id}/allowlist": {
        "post": {
            "summary": "Add e-mails (of people with an account) or addresses to an allowlist-only "
            "listing; their vouchers are signed by the worker.",
            "parameters": [_SLUG, _CID, _LID],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["allowlist"],
                    "properties": {"allowlist": {"type": "array", "items": {"type": "string"}}},
                }
            ),
            "responses": {"200": json_response("How many were added."), **_errors()},
        }
    },
}
