"""Indexer handlers: a chunk of an issuance is confirmed when the indexer sees the
PointsBatchIssued its outbox transaction emitted (ChainEvent.subject names the chunk), and goes
back to "sent" when a reorg removes it. Registered after the points handlers
(backend/composition.py), which record the holders' entries of the same transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain.api import ChainEvent, EventHandler, handler
from backend.core.db import utcnow
from backend.issuing.models import (
    ROW_CONFIRMED,
    ROW_FAILED,
    SENT,
    IssuanceBatch,
    IssuanceChunk,
)
from backend.issuing.services import _set_rows, settle_batch

CHUNK = "issuance_chunk"


def _chunks(
    session: Session, events: Sequence[ChainEvent]
) -> list[tuple[ChainEvent, IssuanceChunk]]:
    out = []
    for ev in events:
        if ev.subject is None or ev.subject.kind != CHUNK:
            continue
        chunk = session.get(IssuanceChunk, ev.subject.id)
        if chunk is not None:
            out.append((ev, chunk))
    return out


def _settle(session: Session, chunk: IssuanceChunk) -> None:
    batch = session.get(IssuanceBatch, chunk.batch_id)
    if batch is None:
        return
    chunks = list(session.scalars(select(IssuanceChunk).where(IssuanceChunk.batch_id == batch.id)))
    settle_batch(session, batch, chunks, utcnow())


def apply_batch_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    now = utcnow()
    for ev, chunk in _chunks(session, events):
        chunk.status, chunk.tx_hash, chunk.confirmed_at, chunk.error = (
            ROW_CONFIRMED,
            ev.tx_hash,
            now,
            "",
        )
        _set_rows(session, chunk, ROW_CONFIRMED)
        session.flush()
        _settle(session, chunk)


def revert_batch_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    for _ev, chunk in _chunks(session, events):
        if chunk.status == ROW_FAILED:
            continue
        chunk.status, chunk.confirmed_at = SENT, None
        _set_rows(session, chunk, SENT)
        session.flush()
        _settle(session, chunk)


HANDLERS: tuple[EventHandler, ...] = (
    handler("PointsBatchIssued", apply_batch_issued, revert_batch_issued, contract="RegionPoints"),
)
