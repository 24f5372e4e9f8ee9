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


def spec() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name in import_all("openapi"):
        if name == __name__:
            continue
        for path, item in getattr(importlib.import_module(name), "PATHS", {}).items():
            paths.setdefault(path, {}).update(item)
    document_limits(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "furusato API",
            "version": "1",
            "description": (
                "Regional points, fan NFTs and the town DAO. Sessions are cookies; every POST "
                "needs the token from GET /api/csrf in an X-CSRFToken header. Errors share one "
                "shape; messages follow the lang cookie or Accept-Language (ja, en)."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
    }


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(spec())


@bp.get("/api/docs")
def docs():
    return render_template("api_docs.html", spec=spec())
