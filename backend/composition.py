"""Which domain handles which chain events: the one place that registers indexer handlers.

Each domain declares its handlers as data (`HANDLERS` in its handlers module, built with
`backend.chain.api.handler`); importing a module registers nothing. `create_app` (the web
process, the Celery worker and beat all build the app) calls `register_handlers()` once per
app; registering twice is a no-op.

The order is the order the indexer runs them in one transaction (after the chain's own token
projection), and it matters where two domains handle the same event: points records a
`Transfer` in the holder's history before merchants marks the charge it paid as paid, and
its `PointsBatchIssued` details before issuing marks the batch's chunk confirmed. Notifications
come last: they read what the other domains made of the same events (a charge paid, a poll's id).
"""

from __future__ import annotations

from backend.chain.api import EventHandler
from backend.chain.api import register_handlers as _register


def domain_handlers() -> tuple[EventHandler, ...]:
    """Every domain's indexer handlers, in the order the indexer runs them."""
    from backend.claims import handlers as claims
    from backend.dao import handlers as dao
    from backend.issuing import handlers as issuing
    from backend.merchants import handlers as merchants
    from backend.notifications import handlers as notifications
    from backend.partners import handlers as partners
    from backend.points import handlers as points
    from backend.premium import handlers as premium
    from backend.residency import handlers as residency
    from backend.shop import handlers as shop

    return (
        *dao.HANDLERS,
        *points.HANDLERS,
        *premium.HANDLERS,
        *issuing.HANDLERS,
        *claims.HANDLERS,
        *partners.HANDLERS,
        *merchants.HANDLERS,
        *shop.HANDLERS,
        *residency.HANDLERS,
        # Last: it tells people of facts the domains above have just recorded.
        *notifications.HANDLERS,
    )


def register_handlers() -> None:
    _register(domain_handlers())
    register_listeners()


def register_listeners() -> None:
    """Domains that follow another's rows without it knowing them, in the same transaction:
    the integrations domain hears when issuing settles an issuance (confirmed or failed), and
    notifications when town staff issue or replace a printed card (the holder is told)."""
    from backend.integrations.events import on_chunk_settled
    from backend.issuing.status import on_rows_settled
    from backend.merchants.card_issue import on_card_issued
    from backend.notifications.cards import card_issued

    on_rows_settled(on_chunk_settled)
    on_card_issued(card_issued)


def register_payment_targets() -> None:
    """Card purchases that are not shop orders, on the provider's one webhook (the shop's
    dispatch by public id prefix, backend/shop/payment_targets.py): points bought with a
    premium."""
    from backend.premium.services import register

    register()
