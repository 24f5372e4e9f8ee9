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
                    "sign_in_paused": {
                        "type": "boolean",
                        "description": "A password reset paused this wallet's sign-in until "
                        "the owner confirms it (POST /api/accounts/wallets).",
                    },
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
            "summary": "Verify a signed EIP-4361 message: sign in, or create the account. "
            "Signed in, a wallet-only account links the wallet; an account with a password links "
            "through POST /api/accounts/wallets.",
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
                    "Refused: other domain, URI or chain, replayed or expired nonce, bad signature."
                ),
                "403": error_response(
                    "A password reset paused this wallet's sign-in (reason wallet_paused), or a "
                    "signed-in account with a password tried to link it (password_required)."
                ),
                "409": error_response("The wallet belongs to another account."),
            },
        }
    },
    "/api/accounts/wallets": {
        "post": {
            "summary": "Link the wallet that signed the EIP-4361 message (nonce from "
            "/api/auth/siwe/nonce), or confirm one a password reset paused. An account with a "
            "password gives it again (audit-logged).",
            "security": [{"session": []}],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["message", "signature"],
                    "properties": {
                        "message": {"type": "string"},
                        "signature": {"type": "string"},
                        "password": {
                            "type": "string",
                            "description": "Required when the account has a password.",
                        },
                    },
                }
            ),
            "responses": {
                "200": json_response("Confirmed again (resumed) or already linked."),
                "201": json_response("Linked."),
                "400": error_response("Malformed message or no nonce issued."),
                "401": error_response(
                    "Not signed in, the password is wrong, or the message was refused."
                ),
                "409": error_response("The wallet belongs to another account."),
            },
        }
    },
    "/api/accounts/wallets/remove": {
        "post": {
            "summary": "Unlink one of the account's own wallets after re-entering the password "
            "(audit-logged).",
            "security": [{"session": []}],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["address", "password"],
                    "properties": {"address": {"type": "string"}, "password": {}},
                }
            ),
            "responses": {
                "200": json_response("Removed."),
                "401": error_response("Not signed in, or the password is wrong."),
                "404": error_response("The wallet is not linked to this account."),
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
