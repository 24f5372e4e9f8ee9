"""Errors of the DAO API; each maps to a 4xx in the JSON error shape."""

from __future__ import annotations

from backend.core.errors import AppError, Conflict, Forbidden


class InvalidSupport(AppError):
    status = 400
    code = "invalid_support"


class AlreadyVoted(Conflict):
    code = "already_voted"


class VotingClosed(Conflict):
    code = "voting_closed"


class NotEligible(Forbidden):
    code = "not_eligible"


class WrongState(Conflict):
    code = "wrong_state"


class InsufficientTreasury(AppError):
    status = 400
    code = "insufficient_treasury"


class InvalidSignature(AppError):
    status = 400
    code = "invalid_signature"


class InvalidOption(AppError):
    status = 400
    code = "invalid_option"
