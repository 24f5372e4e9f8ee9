"""Partner towns: the partnership both towns' staff agree to, and the monthly clearing.

Partnership (one row per unordered pair of towns, UNIQUE):

  proposed   a staff member of one town proposed (that town's approval, with who and when)
  approved   a staff member of the other town approved: setPartner(other, true) is queued on
             each town's points through the outbox (the "town_settings" role key)
  active     both PartnerSet events are indexed: each town's shops accept the other's points
  ended      either town's staff ended it: no more partner payments on the platform at once,
             setPartner(other, false) queued on that town's points; either town may propose
             it again: the same row goes back to "proposed" for its next `term`

The same town cannot approve twice; each step is one conditional UPDATE (compare-and-set), so
concurrent clicks have one winner and write one audit row.

Clearing: every PartnerPaymentAccepted event (indexed by handlers.py into `partner_payments`)
says the payer's town owes the shop's town that many points. A month's statement of a pair of
towns sums both directions; each direction is valued at the yen rate of the town whose points
paid (the town that issued them owes their value), at that town's rate in force in the month
(rates.py: a change is in force from the first day of the next JST month, so no change reaches
a month that has begun), and the net is what the debtor town pays.
A month can be settled once it is over by the chain's clock (JST): two different members of
the debtor town's staff approve the statement as it stands (four eyes; the figures are kept),
then one marks it paid with the bank transfer's reference. If the chain changed the month
(a reorg) after an approval, the approvals are dropped and the new figures must be approved.
Staff of both towns see the statement; only the debtor town's staff approve and settle.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import current_app

from backend.chain import api as chain
from backend.core.db import get_db
from backend.partners.clearing import ClearingService, Statement
from backend.partners.months import JST, month_end, month_of, next_month, parse_month
from backend.partners.partnerships import (
    SETTINGS_ROLE_KEY,
    PartnershipService,
    PartnershipView,
    Side,
)
from backend.partners.rates import MAX_RATE, RateService, RateVersion, TownRates

log = logging.getLogger(__name__)

# Partnerships, rates and clearing live in partnerships.py, rates.py and clearing.py (the
# calendar in months.py); their public names stay importable from here.
__all__ = [
    "JST",
    "MAX_RATE",
    "SETTINGS_ROLE_KEY",
    "PartnerService",
    "PartnershipService",
    "PartnershipView",
    "RateService",
    "RateVersion",
    "Side",
    "Statement",
    "TownRates",
    "chain_clock",
    "month_end",
    "month_of",
    "next_month",
    "parse_month",
    "partner_service",
]


class PartnerService(ClearingService):
    """Partnerships (partnerships.py), rates (rates.py) and clearing (clearing.py) over one DB
    session. `outbox` is built on first use; `chain_now` answers the latest block's time (Unix
    seconds)."""


def chain_clock() -> int:
    """The latest block's time; the wall clock when the chain does not answer."""
    try:
        return int(current_app.extensions["chain"].block_timestamp("latest"))
    except Exception:  # noqa: BLE001 - the page must still render
        log.warning("chain clock unavailable; using the wall clock for clearing months")
        return int(dt.datetime.now(dt.UTC).timestamp())


def partner_service() -> PartnerService:
    """A PartnerService for the current app and request."""
    return PartnerService(get_db().session(), outbox=chain.outbox_service, chain_now=chain_clock)
