"""Merchants: registration (town staff), charges paid by QR, by the customer's single-use code
(customer_codes.py) or by a printed card and the PIN pad (cards.py), sales, redemption (burn)
and the town's settlement queue (settlement_state.py).

Every public method is one unit of work: it commits what it changed, or raises an AppError
and leaves balances, outbox rows and the audit log as they were. Authorisation is checked here:
merchant staff act for their merchant, town staff (STAFF) register merchants and settle.
Payments are ERC-2771 requests signed by the payer's custodial key and relayed (gasless);
a charge becomes "paid" and a settlement "requested" only when the indexer sees the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import current_app

from backend.accounts.models import User
from backend.chain.api import (
    get_vault,
    outbox_service,
)
from backend.core.db import get_db
from backend.core.purpose_keys import CUSTOMER_CODE, purpose_key_hex
from backend.merchants import statement
from backend.merchants.charges import CHARGE_TTL, MerchantCharges
from backend.merchants.registration import MerchantRegistration
from backend.merchants.settlements import MerchantSettlements
from backend.partners.services import chain_clock

log = logging.getLogger(__name__)

# The merchant services live in registration.py, charges.py and settlements.py; their public
# names stay importable from here.
__all__ = [
    "CHARGE_TTL",
    "MerchantCharges",
    "MerchantRegistration",
    "MerchantService",
    "MerchantSettlements",
    "merchant_service",
]


class MerchantService(MerchantCharges, MerchantSettlements):
    """Merchants over one DB session: registration and staff (registration.py), charges
    (charges.py), sales and settlements (settlements.py), and here the statement CSV, which
    needs both (statement.py). `vault` and `outbox` are callables (built on first use);
    `secret` keys the customers' rotating codes."""

    def statement_csv(
        self,
        user: User | None,
        merchant_id: object,
        frm: object,
        to: object,
        translate: Callable[[str], str] | None = None,
    ) -> tuple[str, str]:
        """(file name, CSV text) of the merchant's sales and settlements (statement.py), the
        headers in the reader's language with `translate` (e.g. gettext)."""
        if translate is None:
            return statement.statement_csv(self, user, merchant_id, frm, to)
        return statement.statement_csv(self, user, merchant_id, frm, to, translate)


def merchant_service() -> MerchantService:
    """A MerchantService for the current app and request."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return MerchantService(
        get_db().session(),
        vault=lambda: get_vault(app),
        outbox=outbox_service,
        secret=purpose_key_hex(str(app.config["SECRET_KEY"]), CUSTOMER_CODE),
        chain_now=chain_clock,
    )
