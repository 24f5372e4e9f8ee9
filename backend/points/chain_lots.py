"""A holder's lots as the chain sees them: the LotBook fed with the indexed RegionPoints events
of the holder's transactions, and "today" taken from the chain's clock as pages read it
(`chain_today`: what the indexer and this process saw of it, never less than this server's
clock; no call to the node), or as the node says it (`chain_now`, for the expiry sweep).

`PointsEntry` rows (one per Transfer involving the holder, written by the handlers) name the
holder's transactions; their stored events (chain_events) are replayed in chain order.
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.points.lots import EVENTS, LotBook, jst_day
from backend.points.models import PointsEntry

log = logging.getLogger(__name__)


def chain_now() -> int:
    """The latest block's timestamp; the wall clock when the chain does not answer (then a
    balance may show points expired a few seconds early or late, never spendable for long)."""
    try:
        return int(current_app.extensions["chain"].block_timestamp("latest"))
    except Exception:  # noqa: BLE001 - any chain error: fall back, the page must still render
        log.warning("chain clock unavailable; using the wall clock for points expiry")
        return int(dt.datetime.now(dt.UTC).timestamp())


def chain_today(session: Session, chain_id: int) -> int:
    """The chain's current JST day without asking the node (backend.chain.api.chain_clock):
    balances and lots on pages are read from the projection only (issue 16 §1)."""
    gateway = current_app.extensions.get("chain")
    seen = getattr(gateway, "seen_chain_now", None)
    return jst_day(chain.chain_clock(session, chain_id, seen() if seen else None))


def holder_book(session: Session, chain_id: int, contract: str, holder: str) -> LotBook:
    """The LotBook of `holder` from the indexed (confirmed) events."""
    hashes = select(PointsEntry.tx_hash).where(
        PointsEntry.chain_id == chain_id,
        PointsEntry.contract_address == contract,
        PointsEntry.holder == holder,
    )
    rows = chain.indexed_events(
        session,
        chain_id,
        contract,
        EVENTS,
        tx_hashes=[h for (h,) in session.execute(hashes).all()],
    )
    return LotBook().feed((e.event_name, e.args, e.tx_hash) for e in rows)
