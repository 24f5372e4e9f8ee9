"""Errors of the issuing domain (each maps to a 4xx in the JSON error shape)."""

from __future__ import annotations

from backend.core.errors import AppError, Conflict, NotFound


class BadUpload(AppError):
    """The uploaded file as a whole cannot be read: nothing is written."""

    status = 400
    code = "bad_upload"


class IssuanceNotFound(NotFound):
    code = "issuance_not_found"


class IssuanceNotReady(Conflict):
    """The batch is not in a state that allows this step (e.g. approve before confirm)."""

    code = "issuance_not_ready"


class SecondApproverRequired(AppError):
    """Four eyes: the staff member who created or confirmed a batch cannot approve it."""

    status = 403
    code = "second_approver_required"
