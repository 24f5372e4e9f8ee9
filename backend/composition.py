"""Which domain handles which chain events: the one place that registers indexer handlers.

Each domain declares its handlers as data (`HANDLERS` in its handlers module, built with
`backend.chain.api.handler`); importing a module registers nothing. `create_app` (the web
process, the Celery worker and beat all build the app) calls `register_handlers()` once per
app; registering twice is a no-op.

The order is the order the indexer runs them in one transaction (after the chain's own token
projection), and it matters where two domains handle the same event: points records a
`Transfer` in the holder's history before merchants marks the charge it paid as paid, and
its `PointsBatchIssued` details before issuing marks the batch's chunk confirmed.
"""

from __future__ import annotations

from backend.chain.api import EventHandler
from backend.chain.api import register_handlers as _register


def domain_handlers() -> tuple[EventHandler, ...]:
    """Every domain's indexer handlers, in the order the indexer runs them."""
    from backend.dao import handlers as dao
    from backend.issuing import handlers as issuing
    from backend.merchants import handlers as merchants
    from backend.partners import handlers as partners
    from backend.points import handlers as points
    from backend.shop import handlers as shop

    return (
        *dao.HANDLERS,
        *points.HANDLERS,
        *issuing.HANDLERS,
        *partners.HANDLERS,
        *merchants.HANDLERS,
        *shop.HANDLERS,
    )


def register_handlers() -> None:
    _register(domain_handlers())
