"""The JSON API described as OpenAPI 3.1, merged from every domain's `openapi.py` (`PATHS`).

GET /api/openapi.json serves the spec; GET /api/docs renders it as a readable page (no
third-party JS). A test checks that every /api/ route of the app is documented here.
"""

from __future__ import annotations

import importlib
from typing import Any

from flask import Blueprint, jsonify, render_template

from backend.core.discovery import import_all
from backend.core.limits import document_limits

bp = Blueprint("openapi", __name__)

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["invalid_input"]},
                "message": {"type": "string", "description": "In the request's language."},
                "details": {"type": "object"},
            },
        }
    },
}


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response object in the platform's one error shape."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


UNSAFE = ("post", "put", "patch", "delete")
# Routes that authenticate otherwise (a provider's signature) and so need neither.
NO_SESSION_PATHS = ("/api/payments/webhooks/{provider_name}",)
# The services' API: an API key in `Authorization: Bearer`, never the session, no CSRF token.
BEARER_PREFIX = "/api/v1/"


def _framework_errors(path: str, method: str, op: dict[str, Any]) -> None:
    """Declare what the app's own layers answer on every route of a kind (issue 11 §6), so that
    a generated client knows them: 400 without the CSRF token, 413 for a body over 1 MiB, 404
    for an id no row can have."""
    responses = op.setdefault("responses", {})
    if method in UNSAFE and path not in NO_SESSION_PATHS and not path.startswith(BEARER_PREFIX):
        responses.setdefault(
            "400", error_response("Invalid input, or the X-CSRFToken header is missing or stale.")
        )
    if method in UNSAFE:
        responses.setdefault("413", error_response("The request body is over 1 MiB."))
    if "{" in path:
        responses.setdefault("404", error_response("Nothing with this id or name."))


def _security(path: str, method: str, op: dict[str, Any]) -> None:
    """Every POST needs the session cookie and the CSRF token; a GET sends the cookie if any.
    /api/v1/ takes the API key instead."""
    if path.startswith(BEARER_PREFIX):
        op["security"] = [{"apiKey": []}]
    elif path in NO_SESSION_PATHS:
        op["security"] = []
    elif method in UNSAFE:
        op["security"] = [{"session": [], "csrf": []}]
    else:
        op.setdefault("security", [{"session": []}, {}])


def spec() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name in import_all("openapi"):
        if name == __name__:
            continue
        for path, item in getattr(importlib.import_module(name), "PATHS", {}).items():
            paths.setdefault(path, {}).update(item)
    document_limits(paths)
    for path, item in paths.items():
        for method, op in item.items():
            _framework_errors(path, method, op)
            _security(path, method, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "furusato API",
            "version": "1",
            "description": (
                "Regional points, fan NFTs and the town DAO. Sessions are cookies; every POST "
                "needs the token from GET /api/csrf in an X-CSRFToken header. Errors share one "
                "shape; messages follow the lang cookie or Accept-Language (ja, en). /api/v1 is "
                "the "
                "town's services' API: an API key in Authorization: Bearer, no session."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A service's API key (/api/v1 only), made by the town's "
                    "admin in the staff console or `flask --app backend services create`.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "Set by POST /api/auth/login or /api/accounts/signup.",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRFToken",
                    "description": "The csrf_token from GET /api/csrf (same session); "
                    "required on every POST, PUT, PATCH and DELETE.",
                },
            },
        },
    }


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(spec())


@bp.get("/api/docs")
def docs():
    return render_template("api_docs.html", spec=spec())
