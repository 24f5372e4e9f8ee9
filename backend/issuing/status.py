"""Where an issuance is (issue 13 §2): reading batches and their rows, and following the
chain: a chunk's rows are queued -> sent (the outbox sent it) -> confirmed (the indexer saw
its PointsBatchIssued: handlers.py) or failed (the outbox gave up or the transaction
reverted).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import FAILED_CALL_STATES
from backend.core.errors import N_
from backend.core.numbers import db_id_or_none
from backend.issuing.errors import (
    IssuanceNotFound,
)
from backend.issuing.models import (
    AWAITING_APPROVAL,
    DONE,
    FAILED,
    IN_FLIGHT,
    INVALID,
    QUEUED,
    READY,
    ROW_CONFIRMED,
    ROW_FAILED,
    SENDING,
    SENT,
    IssuanceBatch,
    IssuanceChunk,
    IssuanceRow,
)
from backend.issuing.recipients import IssuingBase
from backend.regions.models import Town

_OUTBOX_FAILED = FAILED_CALL_STATES  # the outbox's: the call was never executed
_OUTBOX_SENT = ("sent", "replaced", "confirmed")


@dataclass(frozen=True)
class Progress:
    """Where a batch is: counts of its rows by status, and how far (0-100) it has come."""

    queued: int
    sent: int
    confirmed: int
    failed: int
    invalid: int

    @property
    def finished(self) -> int:
        return self.confirmed + self.failed

    @property
    def issuing(self) -> int:
        return self.queued + self.sent + self.confirmed + self.failed

    @property
    def percent(self) -> int:
        return 100 if self.issuing == 0 else (100 * self.finished) // self.issuing


class IssuingStatus(IssuingBase):
    """Reading batches, their rows and progress."""

    def _batch(self, batch_id: object) -> IssuanceBatch:
        i = db_id_or_none(batch_id)
        batch = self.session.get(IssuanceBatch, i) if i else None
        if batch is None:
            raise IssuanceNotFound(N_("There is no such issuance."))
        return batch

    def batch(self, actor: User | None, town: Town, batch_id: object) -> IssuanceBatch:
        """One batch of `town`, its progress brought up to date (town STAFF only)."""
        actor = require_town_role(actor, town.id, STAFF)
        batch = self._batch(batch_id)
        if batch.town_id != town.id:
            raise IssuanceNotFound(N_("There is no such issuance."))
        if batch.state in IN_FLIGHT:
            refresh(self.session, [batch], self._now())
            self.session.commit()
        return batch

    def batches(self, actor: User | None, town: Town, limit: int = 50) -> list[IssuanceBatch]:
        """The town's latest batches, newest first (town STAFF only)."""
        require_town_role(actor, town.id, STAFF)
        return list(
            self.session.scalars(
                select(IssuanceBatch)
                .where(IssuanceBatch.town_id == town.id)
                .order_by(IssuanceBatch.id.desc())
                .limit(limit)
            )
        )

    def rows(self, batch: IssuanceBatch) -> list[IssuanceRow]:
        return list(
            self.session.scalars(
                select(IssuanceRow)
                .where(IssuanceRow.batch_id == batch.id)
                .order_by(IssuanceRow.line)
            )
        )

    def progress(self, batch: IssuanceBatch) -> Progress:
        counts = dict(
            self.session.execute(
                select(IssuanceRow.status, func.count())
                .where(IssuanceRow.batch_id == batch.id)
                .group_by(IssuanceRow.status)
            ).all()
        )
        return Progress(
            queued=int(counts.get(QUEUED, 0) + counts.get(READY, 0)),
            sent=int(counts.get(SENT, 0)),
            confirmed=int(counts.get(ROW_CONFIRMED, 0)),
            failed=int(counts.get(ROW_FAILED, 0)),
            invalid=int(counts.get(INVALID, 0)),
        )

    def can_approve(self, user: User | None, batch: IssuanceBatch) -> bool:
        return (
            user is not None
            and batch.state == AWAITING_APPROVAL
            and user.id not in (batch.created_by, batch.confirmed_by)
        )


# ---------------------------------------------------------------------- following the chain


def refresh(session: Session, batches: Sequence[IssuanceBatch], now: dt.datetime) -> None:
    """Bring in-flight batches up to date with their outbox rows (the caller commits): a chunk
    whose call was sent is "sent", one the outbox gave up on (or that reverted) is "failed"
    with its rows; a batch is "sending" once a chunk is on its way, then "done" when every
    chunk is confirmed (by the indexer, handlers.py) or "failed" when every chunk is final
    and one failed."""
    for batch in batches:
        chunks = list(
            session.scalars(select(IssuanceChunk).where(IssuanceChunk.batch_id == batch.id))
        )
        open_ids = [c.outbox_tx_id for c in chunks if c.status in (QUEUED, SENT) and c.outbox_tx_id]
        states = chain.outbox_states(session, [i for i in open_ids if i is not None])
        for chunk in chunks:
            st = states.get(chunk.outbox_tx_id or 0)
            if st is None or chunk.status not in (QUEUED, SENT):
                continue
            if st.state in _OUTBOX_FAILED:
                error = (st.error or st.state)[:500]
                if _move_chunk(session, chunk, ROW_FAILED, (QUEUED, SENT), error=error):
                    _set_rows(
                        session,
                        chunk,
                        ROW_FAILED,
                        N_("The chain did not take this issue (%(why)s)."),
                        only_from=(QUEUED, SENT),
                        why=error,
                    )
            elif (
                st.state in _OUTBOX_SENT
                and chunk.status == QUEUED
                and _move_chunk(session, chunk, SENT, (QUEUED,))
            ):
                _set_rows(session, chunk, SENT, only_from=(QUEUED,))
        # Read again: the indexer may have confirmed chunks meanwhile. A batch state computed
        # from a stale read is put right by the next refresh ("sending" stays in flight).
        chunks = list(
            session.scalars(
                select(IssuanceChunk)
                .where(IssuanceChunk.batch_id == batch.id)
                .execution_options(populate_existing=True)
            )
        )
        settle_batch(session, batch, chunks, now)


def _move_chunk(
    session: Session,
    chunk: IssuanceChunk,
    status: str,
    only_from: tuple[str, ...],
    *,
    error: str | None = None,
) -> bool:
    """Move `chunk` to `status` if it is still in one of `only_from`, as one conditional UPDATE;
    True when it moved. The chunk is read again either way.

    The indexer may confirm the chunk between our read and this write (it saw the chunk's
    PointsBatchIssued): an unconditional write took the chunk and its rows back to "sent", for
    good, since that event does not come again, while the service had been told "confirmed"
    (seen in the webhooks end-to-end test). On PostgreSQL the UPDATE waits for the indexer's
    transaction and then finds the chunk no longer in `only_from`."""
    values: dict[str, Any] = {"status": status}
    if error is not None:
        values["error"] = error
    moved = session.execute(
        update(IssuanceChunk)
        .where(IssuanceChunk.id == chunk.id, IssuanceChunk.status.in_(only_from))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(chunk)
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def settle_batch(
    session: Session, batch: IssuanceBatch, chunks: Sequence[IssuanceChunk], now: dt.datetime
) -> None:
    """The batch's state from its chunks' (the caller commits)."""
    if batch.state not in (*IN_FLIGHT, DONE, FAILED) or not chunks:
        return
    statuses = {c.status for c in chunks}
    if statuses <= {ROW_CONFIRMED}:
        batch.state, batch.finished_at = DONE, batch.finished_at or now
    elif statuses <= {ROW_CONFIRMED, ROW_FAILED}:
        batch.state, batch.finished_at = FAILED, batch.finished_at or now
    elif statuses & {SENT, ROW_CONFIRMED, ROW_FAILED} or batch.state in (DONE, FAILED, SENDING):
        # on its way, or a reorg took a confirmed chunk back
        batch.state, batch.finished_at = SENDING, None


# Called with (session, chunk, status) when a chunk's rows become confirmed or failed, in the
# same transaction: how another domain follows issuances without issuing knowing it (the
# integrations domain tells services about theirs; wired by backend/composition.py).
RowsSettled = Callable[[Session, IssuanceChunk, str], None]
_SETTLED: list[RowsSettled] = []


def on_rows_settled(listener: RowsSettled) -> None:
    """Call `listener` whenever a chunk's rows reach confirmed or failed (registering the
    same function twice is a no-op)."""
    if listener not in _SETTLED:
        _SETTLED.append(listener)


def _set_rows(
    session: Session,
    chunk: IssuanceChunk,
    status: str,
    error: str = "",
    *,
    only_from: tuple[str, ...] | None = None,
    **args: Any,
) -> None:
    """Set the status (and error) of the chunk's rows, only of those in `only_from` when given;
    tell the listeners when the rows became confirmed or failed."""
    query = update(IssuanceRow).where(IssuanceRow.chunk_id == chunk.id)
    if only_from is not None:
        query = query.where(IssuanceRow.status.in_(only_from))
    session.execute(
        query.values(
            status=status, error=error, error_args=json.dumps(args) if args else ""
        ).execution_options(synchronize_session=False)
    )
    if status in (ROW_CONFIRMED, ROW_FAILED):
        for listener in _SETTLED:
            listener(session, chunk, status)


def refresh_in_flight(session: Session, now: dt.datetime) -> int:
    """Refresh every in-flight batch (the beat task); returns how many there were."""
    batches = list(session.scalars(select(IssuanceBatch).where(IssuanceBatch.state.in_(IN_FLIGHT))))
    refresh(session, batches, now)
    return len(batches)
