"""Errors of the points domain (each maps to a 4xx in the JSON error shape)."""

from __future__ import annotations

from backend.core.errors import AppError, NotFound


class InvalidAmount(AppError):
    status = 400
    code = "invalid_amount"


class InsufficientPoints(AppError):
    status = 409
    code = "insufficient_points"


class PointsNotAvailable(NotFound):
    code = "points_not_available"


class EmailNotVerified(AppError):
    """Welcome points wait until the account's email address is verified (issue 11 §4)."""

    status = 403
    code = "email_not_verified"
