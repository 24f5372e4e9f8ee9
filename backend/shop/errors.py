"""Errors of the shop and ticket check-in; messages are English msgids translated per request."""

from __future__ import annotations

from backend.core.errors import Conflict, Forbidden, NotFound


class UnknownListing(NotFound):
    code = "unknown_listing"


class NotOnSale(Conflict):
    code = "not_on_sale"


class SoldOut(Conflict):
    code = "sold_out"


class WalletCapExceeded(Conflict):
    code = "wallet_cap_exceeded"


class InsufficientBalance(Conflict):
    code = "insufficient_balance"


class TicketRefused(Conflict):
    """A ticket that venue staff may not check in; `code` says why."""

    code = "ticket_refused"


class NotYourTicket(Forbidden):
    code = "not_your_ticket"
