"""Errors of the integrations domain (service accounts and /api/v1), each a 4xx in the JSON
error shape with its own code, so that a service's client can act on `error.code`."""

from __future__ import annotations

from backend.core.errors import AppError, Conflict, InvalidInput, NotFound


class InvalidApiKey(AppError):
    """No key, a malformed key, an unknown, revoked or expired key, or a suspended service."""

    status = 401
    code = "invalid_api_key"


class ServiceNotFound(NotFound):
    code = "service_not_found"


class ApiIssuanceNotFound(NotFound):
    """No issuance with this id among the service's own (another service's is not found)."""

    code = "issuance_not_found"


class IdempotencyKeyReused(Conflict):
    """The idempotency key was used before with another body: nothing issued."""

    code = "idempotency_key_reused"


class BudgetExceeded(Conflict):
    """The service's daily or monthly budget would be passed: nothing issued."""

    code = "budget_exceeded"


class AmountOverCap(InvalidInput):
    code = "amount_over_cap"


class ProgrammeNotAllowed(InvalidInput):
    code = "programme_not_allowed"


class InvalidRecipient(InvalidInput):
    code = "invalid_recipient"


class RotationInProgress(Conflict):
    """Two keys are valid already: revoke the old one before rotating again."""

    code = "rotation_in_progress"
