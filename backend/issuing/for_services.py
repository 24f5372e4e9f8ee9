"""Issuing for the town's other services (issue 14 §2): the building blocks the integrations
domain's /api/v1 puts together in ONE transaction with its budgets and idempotency rows.

Unlike staff issuing (preview -> confirm, four eyes), a service's request is authorised by its
API key and bounded by its budgets, so its batch is created confirmed and its chunks queued at
once (`queue`). Nothing here commits: the caller's transaction holds the budget, the batch,
its rows, the outbox rows and the audit rows together, or none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.claims.services import claim_service
from backend.core.db import get_db
from backend.core.errors import N_
from backend.core.models import AuditLog
from backend.issuing.csv_upload import RawRow
from backend.issuing.models import (
    CONFIRMED,
    IN_FLIGHT,
    READY,
    IssuanceBatch,
    IssuanceChunk,
    IssuanceRow,
)
from backend.issuing.recipients import FOUR_EYES_FIELD, IssuableProgramme
from backend.issuing.services import IssuingService
from backend.issuing.status import refresh
from backend.merchants import limits
from backend.merchants.services import merchant_service
from backend.points.errors import PointsNotAvailable
from backend.points.town_settings import town_settings_service
from backend.regions.models import Town


@dataclass(frozen=True)
class RowState:
    """Where one issued row is: its status (issuing's row states), the transaction that
    carried it once the indexer saw it, and why it failed."""

    status: str
    tx_hash: str | None
    error: str


class ServiceIssuing(IssuingService):
    """Issuing for a service account over one DB session (the caller commits)."""

    def resolve(self, town: Town, items: Sequence[tuple[str, int]]) -> list[IssuanceRow]:
        """One row per (recipient, amount): ready with its address, or invalid with its
        error (issuing's msgid and args). Writes nothing. The same recipient may appear twice."""
        raw = [RawRow(i + 2, r, str(a), "") for i, (r, a) in enumerate(items)]
        return self._resolve(town, raw, repeats=True)

    def queue(
        self,
        *,
        service_account_id: int,
        town: Town,
        programme: IssuableProgramme,
        reason: str,
        key: str,
        rows: list[IssuanceRow],
    ) -> IssuanceBatch:
        """A confirmed batch of `rows` (all ready) with its chunks queued on the outbox, audited
        with the service as actor, in the caller's transaction (flushed, not committed).
        `key` must be unique: "service:<id>:<request digest>"."""
        if not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        assert rows and all(r.status == READY for r in rows)
        actor = f"service:{service_account_id}"
        now = self._now()
        total = sum(int(r.amount or 0) for r in rows)
        batch = IssuanceBatch(
            town_id=town.id,
            programme_id=programme.programme_id,
            reason=reason,
            source="service",
            file_name="",
            state=CONFIRMED,
            idempotency_key=key,
            total=Decimal(total),
            ready_rows=len(rows),
            invalid_rows=0,
            four_eyes_amount=Decimal(limits.town_limit(self.session, town.id, FOUR_EYES_FIELD)),
            created_by=None,
            service_account_id=service_account_id,
            created_at=now,
            confirmed_at=now,
        )
        self.session.add(batch)
        self.session.flush()
        for r in rows:
            r.batch_id = batch.id
        self.session.add_all(rows)
        self.session.add(
            AuditLog(
                actor=actor,
                action="points.issuance.create",
                subject_type="issuance_batch",
                subject_id=str(batch.id),
                amount=Decimal(total),
                reason=reason,
                details={
                    "town_id": town.id,
                    "programme_id": programme.programme_id,
                    "rows": len(rows),
                    "ready_rows": len(rows),
                    "source": "service",
                    "service_account_id": service_account_id,
                },
            )
        )
        self.session.flush()
        self._queue_chunks(actor, batch)
        self.session.flush()
        return batch

    def row_states(self, row_ids: Sequence[int]) -> dict[int, RowState]:
        """Each row's state, with its chunk's transaction hash and error."""
        if not row_ids:
            return {}
        found = self.session.execute(
            select(IssuanceRow.id, IssuanceRow.status, IssuanceChunk.tx_hash, IssuanceChunk.error)
            .join(IssuanceChunk, IssuanceChunk.id == IssuanceRow.chunk_id, isouter=True)
            .where(IssuanceRow.id.in_(list(row_ids)))
        ).all()
        return {
            int(i): RowState(str(status), tx if status == "confirmed" else None, error or "")
            for i, status, tx, error in found
        }

    def refresh_batches(self, batch_ids: Sequence[int]) -> None:
        """Bring these batches' rows up to date with the outbox (sent, failed) when they are
        still in flight (the caller commits)."""
        ids = sorted(set(batch_ids))
        if not ids:
            return
        batches = list(
            self.session.scalars(
                select(IssuanceBatch).where(
                    IssuanceBatch.id.in_(ids), IssuanceBatch.state.in_(IN_FLIGHT)
                )
            )
        )
        if batches:
            refresh(self.session, batches, self._now())


def service_issuing() -> ServiceIssuing:
    """A ServiceIssuing for the current app and request."""
    return ServiceIssuing(
        get_db().session(),
        merchants=merchant_service(),
        settings=town_settings_service(),
        claims=claim_service(),
        outbox=chain.outbox_service,
    )


def rows_of_chunk(session: Session, chunk_id: int) -> list[int]:
    """The ids of a chunk's rows (for a domain following issuances through on_rows_settled)."""
    return [
        int(i)
        for i in session.scalars(select(IssuanceRow.id).where(IssuanceRow.chunk_id == chunk_id))
    ]
