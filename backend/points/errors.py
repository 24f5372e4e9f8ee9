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


class ProgrammeNotFound(NotFound):
    code = "programme_not_found"


class ProgrammeInactive(AppError):
    """The town closed this programme: nothing is granted from it."""

    status = 409
    code = "programme_inactive"


class DailyCapReached(AppError):
    """A grant would pass the programme's daily cap (per person or per town); nothing written."""

    status = 409
    code = "daily_cap_reached"


class GrantNotFound(NotFound):
    """No grant of this town has this id (another town's grant is not found either)."""

    code = "grant_not_found"


class GrantNotRetryable(AppError):
    """A grant that cannot be sent again now: an earlier call of it may still be mined."""

    status = 409
    code = "grant_not_retryable"
