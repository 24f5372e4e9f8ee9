"""OpenAPI path items for the accounts API (merged by backend/core/openapi.py)."""

from __future__ import annotations

from backend.core.openapi import error_response, json_body, json_response

_USER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": ["string", "null"]},
        "display_name": {"type": "string"},
        "locale": {"type": "string", "enum": ["ja", "en"]},
        # Welcome points wait until the owner followed the link mailed at sign-up.
        "email_verified": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "addresses": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "address": {"type": "string"},
                    "kind": {"type": "string", "enum": ["custodial", "external"]},
                },
            },
        },
    },
}
_SIGNED_IN = {
    "type": "object",
    "properties": {"user": _USER, "csrf_token": {"type": "string"}},
}
_CREDENTIALS = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": {"type": "string"}, "password": {"type": "string", "minLength": 10}},
}

PATHS = {
    "/api/csrf": {
        "get": {
            "summary": "The CSRF token to send in X-CSRFToken with every POST.",
            "responses": {"200": json_response("The token.")},
        }
    },
    "/api/accounts/signup": {
        "post": {
            "summary": "Create an account (email + password) with a built-in account key, and "
            "sign in.",
            "requestBody": json_body(
                {
                    **_CREDENTIALS,
                    "properties": {
                        **_CREDENTIALS["properties"],
                        "display_name": {"type": "string", "maxLength": 80},
                        "locale": {"type": "string", "enum": ["ja", "en"]},
                        "town": {
                            "type": "string",
                            "maxLength": 64,
                            "description": "Slug of the town whose welcome points the "
                            "verification link unlocks.",
                        },
                    },
                }
            ),
            "responses": {
                "201": json_response("Signed up and signed in.", _SIGNED_IN),
                "400": error_response("Invalid email, password, name or town; nothing created."),
                "409": error_response("An account with this email exists."),
                "503": error_response("Built-in accounts are unavailable (no master key)."),
            },
        }
    },
    "/api/auth/login": {
        "post": {
            "summary": "Sign in with email and password (a new session).",
            "requestBody": json_body(_CREDENTIALS),
            "responses": {
                "200": json_response("Signed in.", _SIGNED_IN),
                "401": error_response("Email or password is incorrect."),
            },
        }
    },
    "/api/auth/logout": {
        "post": {
            "summary": "End the session.",
            "responses": {"200": json_response("Signed out; a fresh CSRF token.")},
        }
    },
    "/api/accounts/me": {
        "get": {
            "summary": "The signed-in user and their addresses (never any key material).",
            "security": [{"session": []}],
            "responses": {
                "200": json_response(
                    "The user.", {"type": "object", "properties": {"user": _USER}}
                ),
                "401": error_response("Not signed in."),
            },
        }
    },
    "/api/auth/siwe/nonce": {
        "get": {
            "summary": "Issue a single-use Sign-In with Ethereum nonce for this session.",
            "parameters": [
                {
                    "name": "address",
                    "in": "query",
                    "required": False,
                    "description": "When given, the response carries the exact EIP-4361 "
                    "message to sign.",
                    "schema": {"type": "string"},
                }
            ],
            "responses": {
                "200": json_response("Nonce, domain, uri, chain id, validity and message."),
                "400": error_response("Malformed address; nothing issued."),
                "503": error_response("The chain is unreachable."),
            },
        }
    },
    "/api/auth/siwe/verify": {
        "post": {
            "summary": "Verify a signed EIP-4361 message: sign in, create or link the account.",
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["message", "signature"],
                    "properties": {"message": {"type": "string"}, "signature": {"type": "string"}},
                }
            ),
            "responses": {
                "200": json_response("Signed in (existing account or linked)."),
                "201": json_response("A new account was created for this wallet."),
                "400": error_response("Malformed message or no nonce issued."),
                "401": error_response(
                    "Refused: other domain or chain, replayed or expired nonce, bad signature."
                ),
                "409": error_response("The wallet belongs to another account."),
            },
        }
    },
    "/api/accounts/export-key": {
        "post": {
            "summary": "Export the built-in account's private key after re-entering the "
            "password (audit-logged).",
            "security": [{"session": []}],
            "requestBody": json_body(
                {"type": "object", "required": ["password"], "properties": {"password": {}}}
            ),
            "responses": {
                "200": json_response("Address and private key (Cache-Control: no-store)."),
                "401": error_response("Not signed in, or the password is wrong."),
                "404": error_response("This account has no built-in key."),
            },
        }
    },
}
