"""Indexer handlers: a claim transfer is confirmed when the indexer sees the Transfer its
outbox transaction emitted (ChainEvent.subject names it), and goes back to "sent" when a reorg
removes it. Only then does the mover read the wallet's balance again (services.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from backend.chain.api import ChainEvent, EventHandler, handler
from backend.claims.models import CONFIRMED, FAILED, SENT, ClaimTransfer
from backend.core.db import utcnow

SUBJECT = "claim_transfer"


def _transfers(
    session: Session, events: Sequence[ChainEvent]
) -> list[tuple[ChainEvent, ClaimTransfer]]:
    out = []
    for ev in events:
        if ev.subject is None or ev.subject.kind != SUBJECT:
            continue
        move = session.get(ClaimTransfer, ev.subject.id)
        if move is not None:
            out.append((ev, move))
    return out


def apply_transfer(session: Session, events: Sequence[ChainEvent]) -> None:
    now = utcnow()
    for ev, move in _transfers(session, events):
        move.status, move.tx_hash, move.confirmed_at, move.error = CONFIRMED, ev.tx_hash, now, ""


def revert_transfer(session: Session, events: Sequence[ChainEvent]) -> None:
    for _ev, move in _transfers(session, events):
        if move.status != FAILED:
            move.status, move.confirmed_at = SENT, None


HANDLERS: tuple[EventHandler, ...] = (
    handler("Transfer", apply_transfer, revert_transfer, contract="RegionPoints"),
)
