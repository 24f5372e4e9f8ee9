"""Indexer handlers: a purchase is `issued` once the chain's PointsIssued of its outbox call is
indexed, and back to `processing` if a reorg removes it (the chain is the truth)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import ChainEvent, EventHandler, handler
from backend.core.db import utcnow
from backend.premium.models import ISSUED, PROCESSING, PremiumPurchase


def apply_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    ids = chain.outbox_ids(session, (ev.tx_hash for ev in events))
    tx_ids = sorted({ids[ev.tx_hash] for ev in events if ev.tx_hash in ids})
    if tx_ids:
        session.execute(
            update(PremiumPurchase)
            .where(
                PremiumPurchase.outbox_tx_id.in_(tx_ids),
                PremiumPurchase.status == PROCESSING,
            )
            .values(status=ISSUED, issued_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def revert_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    ids = chain.outbox_ids(session, (ev.tx_hash for ev in events))
    tx_ids = sorted({ids[ev.tx_hash] for ev in events if ev.tx_hash in ids})
    if tx_ids:
        session.execute(
            update(PremiumPurchase)
            .where(PremiumPurchase.outbox_tx_id.in_(tx_ids), PremiumPurchase.status == ISSUED)
            .values(status=PROCESSING, issued_at=None)
            .execution_options(synchronize_session=False)
        )


HANDLERS: tuple[EventHandler, ...] = (
    handler("PointsIssued", apply_issued, revert_issued, contract="RegionPoints"),
)
