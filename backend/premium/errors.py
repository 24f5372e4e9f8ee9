"""Errors of points bought with a premium (each a 4xx in the JSON error shape; pages show the
translated message). A refused request has changed nothing."""

from __future__ import annotations

from backend.core.errors import Conflict, NotFound


class OfferNotAvailable(Conflict):
    """The town sells no points now (no offer, switched off, or its programme is closed)."""

    code = "offer_not_available"


class LimitReached(Conflict):
    """A purchase would pass the person's or the town's monthly limit."""

    code = "limit_reached"


class PurchaseNotFound(NotFound):
    code = "purchase_not_found"
