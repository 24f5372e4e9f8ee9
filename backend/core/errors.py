"""One error type for the API and one JSON shape for every API error.

    {"error": {"code": "not_found", "message": "...", "details": {...}}}

Services raise `AppError` subclasses; routes never build error responses by hand. Pages get the
same errors rendered as a translated HTML page: no page ever shows a raw exception.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark an error message for translation; it is translated when the response is built.

    Messages are English msgids with %(name)s placeholders filled from the error's details.
    """
    return message


class AppError(Exception):
    """Root of the errors a caller can act on. `status` is the HTTP status it maps to."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def translated(self) -> str:
        """The message in the current request's language (for pages)."""
        return translate(self.message, self.details)


class InvalidInput(AppError):
    """A request's input is malformed or out of range (a field name goes in details)."""

    status = 400
    code = "invalid_input"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def json_object() -> dict[str, Any]:
    """The request's JSON body as an object; InvalidInput (400) for anything else.

    Text with a NUL character is refused here: PostgreSQL cannot store it (a 500 otherwise)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput(N_("Send a JSON object."))
    if _has_nul(data):
        raise InvalidInput(N_("Text must not contain NUL characters."))
    return data


class NotFound(AppError):
    status = 404
    code = "not_found"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Conflict(AppError):
    status = 409
    code = "conflict"


class ServiceUnavailable(AppError):
    status = 503
    code = "unavailable"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _wants_json() -> bool:
    # /meta/ is read by wallets and marketplaces (tokenURI): JSON errors, never an HTML page.
    if request.path.startswith(("/api/", "/meta/")) or request.path == "/healthz":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def translate(message: str, details: dict[str, Any] | None = None) -> str:
    """`message` in the request's language, its %(name)s placeholders filled from `details`."""
    # A placeholder without its value: show the English text rather than fail.
    with contextlib.suppress(KeyError, ValueError, TypeError):
        return str(gettext(message, **(details or {})))
    return message


def _respond(status: int, code: str, message: str, details: dict[str, Any] | None = None):
    message = translate(message, details)
    if _wants_json():
        resp: Response = jsonify(error_body(code, message, details))
        resp.status_code = status
        return resp
    return render_template("error.html", status=status, code=code, message=message), status


def too_many_requests(exc: HTTPException) -> Any:
    """A rate limit's 429 (backend/core/limits.py): a translated message, JSON or page, and the
    Retry-After header the limiter adds."""
    return _respond(
        429, "too_many_requests", N_("Too many attempts. Please wait a while and try again.")
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AppError)
    def _app_error(exc: AppError):
        return _respond(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return _respond(exc.code or 500, code, exc.description or exc.name or "")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Logged with the traceback for operators; the user sees a plain message only.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "internal_error", "An unexpected error occurred.")
