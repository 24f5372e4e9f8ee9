"""Errors of the partner towns (each maps to a 4xx in the JSON error shape)."""

from __future__ import annotations

from backend.core.errors import Conflict, NotFound


class PartnershipNotFound(NotFound):
    code = "partnership_not_found"


class NotPartners(Conflict):
    code = "not_partners"


class PartnershipNotReady(Conflict):
    code = "partnership_not_ready"


class AlreadyApproved(Conflict):
    code = "already_approved"


class ClearingNotReady(Conflict):
    code = "clearing_not_ready"


class SecondApproverNeeded(Conflict):
    code = "second_approver_needed"


class StatementChanged(Conflict):
    code = "statement_changed"
