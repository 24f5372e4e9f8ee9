"""Errors of the merchants domain (each maps to a 4xx in the JSON error shape)."""

from __future__ import annotations

from backend.core.errors import AppError, Conflict, NotFound


class MerchantNotFound(NotFound):
    code = "merchant_not_found"


class MerchantNotActive(Conflict):
    code = "merchant_not_active"


class ChargeNotFound(NotFound):
    code = "charge_not_found"


class ChargeExpired(Conflict):
    code = "charge_expired"


class ChargeNotPayable(Conflict):
    code = "charge_not_payable"


class ChargeNotCancellable(Conflict):
    code = "charge_not_cancellable"


class UnconfirmedAccount(Conflict):
    code = "unconfirmed_account"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class CustomerCodeInvalid(AppError):
    status = 400
    code = "customer_code_invalid"


class WrongPin(AppError):
    status = 403
    code = "wrong_pin"


class CardLocked(AppError):
    status = 423
    code = "card_locked"


class SettlementNotFound(NotFound):
    code = "settlement_not_found"


class SettlementNotReady(Conflict):
    code = "settlement_not_ready"


class CardExists(Conflict):
    code = "card_exists"


class CardOtherTown(AppError):
    status = 400
    code = "card_other_town"
