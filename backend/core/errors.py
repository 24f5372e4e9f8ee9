"""One error type for the API and one JSON shape for every API error.

    {"error": {"code": "not_found", "message": "...", "details": {...}}}

Services raise `AppError` subclasses; routes never build error responses by hand. Pages get the
same errors rendered as a translated HTML page: no page ever shows a raw exception.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
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


# Messages of the HTTP errors the framework raises (unknown page, wrong method, body too large).
HTTP_MESSAGES = {
    400: N_("The request could not be understood. Please check what you entered and try again."),
    401: N_("Please log in to continue."),
    403: N_("You do not have permission to do this."),
    404: N_("This page does not exist. Check the address, or start again from the start page."),
    405: N_("This page cannot be used this way."),
    409: N_("This conflicts with a change made just before. Reload the page and try again."),
    413: N_("What you sent is too large."),
    415: N_("This kind of data is not accepted here."),
}
HTTP_FALLBACK = N_("This request could not be handled.")
CSRF_MESSAGE = N_(
    "This form has expired, so nothing was sent and nothing was changed. Go back, check what "
    "you entered and send it again. If you were logged out, log in first."
)


def _respond(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    page: str = "",
):
    message = translate(message, details)
    if _wants_json():
        resp: Response = jsonify(error_body(code, message, details))
        resp.status_code = status
        return resp
    back = _same_site_referrer()
    return render_template(
        "error.html", status=status, code=code, message=message, page=page, back=back
    ), status


def _same_site_referrer() -> str | None:
    """The page the person came from, when it is one of ours (a path only, never another site)."""
    ref = request.referrer or ""
    parts = urlsplit(ref)
    if not ref or parts.netloc != request.host or parts.scheme not in ("http", "https"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


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

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):
        # Flask-WTF's own sentences ("The CSRF session token is missing.") are English and
        # technical; a person whose session ran out needs to know nothing happened and what to do.
        return _respond(400, "csrf_failed", CSRF_MESSAGE, page="csrf")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        status = exc.code or 500
        # Werkzeug's descriptions are English only: every status has a message of our own.
        return _respond(status, code, HTTP_MESSAGES.get(status, HTTP_FALLBACK))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Logged with the traceback for operators; the user sees a plain message only.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "internal_error", "An unexpected error occurred.")
