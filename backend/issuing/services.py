"""Issuing points by town staff (issue 13 §2): to one person (by e-mail, customer code, printed
card or address) or to many from a CSV. preview -> confirm -> `issueBatch` on chain.

Every public method is one unit of work: it commits what it changed, or raises an AppError and
writes nothing. Authorisation is here: town STAFF only (401/403 otherwise).

- **Preview** resolves each row (recipient -> the account's built-in address, through the
  accounts and merchants services) and stores the batch with each row ready or its error; a
  file that cannot be read as a whole writes nothing (csv_upload.py). The batch's idempotency
  key is UNIQUE: the same form or upload twice is one batch.
- **Confirm** moves previewed -> confirmed (or awaiting_approval above the town's four-eyes
  amount) by ONE conditional UPDATE, so ten confirms at once (SQLite or PostgreSQL) have one
  winner; the winner queues the chunks (<= CHUNK_SIZE recipients per `issueBatch`, one outbox
  row each with the key issuing.batch:<id>:chunk:<n>) in the same transaction. Nothing is
  issued twice, even if the worker dies between steps: the outbox key is deterministic.
- **Approve** (four eyes): another member of staff than the one who created or confirmed it.
- **Progress** follows the chain: a chunk's rows are queued -> sent (the outbox sent it) ->
  confirmed (the indexer saw its PointsBatchIssued: handlers.py) or failed (the outbox gave up
  or the transaction reverted).

On chain each chunk carries the programme's reason string (e.g. "thanks"), not the staff's
reason: the chain is public and a reason may name a person. The staff's reason stays in the
batch and the audit log.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, Sender, Subject
from backend.claims.services import HeldRow, claim_service
from backend.core.db import get_db
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.issuing.csv_upload import RawRow
from backend.issuing.errors import (
    IssuanceNotReady,
    SecondApproverRequired,
)
from backend.issuing.models import (
    APPROVED,
    AWAITING_APPROVAL,
    CONFIRMED,
    DONE,
    FAILED,
    PREVIEWED,
    QUEUED,
    READY,
    SENDING,
    IssuanceBatch,
    IssuanceChunk,
    IssuanceRow,
)
from backend.issuing.preview import IssuingPreview
from backend.issuing.recipients import (
    FOUR_EYES_FIELD,
    MAX_NOTE,
    MAX_REASON,
    MAX_RECIPIENT,
    IssuableProgramme,
    _key,
    _reason,
    row_error,
    row_held_for,
)
from backend.issuing.status import (
    IssuingStatus,
    Progress,
    _set_rows,
    refresh,
    refresh_in_flight,
    settle_batch,
)
from backend.merchants import limits
from backend.merchants.services import merchant_service
from backend.points.errors import PointsNotAvailable
from backend.points.services import parse_amount
from backend.points.town_settings import (
    town_settings_service,
)
from backend.regions.models import Town

log = logging.getLogger(__name__)

# The issuing services live in small modules (recipients.py, preview.py, status.py); their
# public names stay importable from here.
__all__ = [
    "CHUNK_SIZE",
    "FOUR_EYES_FIELD",
    "MAX_NOTE",
    "MAX_REASON",
    "MAX_RECIPIENT",
    "IssuableProgramme",
    "IssuingService",
    "Progress",
    "_set_rows",
    "issuing_service",
    "refresh",
    "refresh_in_flight",
    "row_error",
    "row_held_for",
    "settle_batch",
]

CHUNK_SIZE = 200  # recipients per issueBatch: ~70k gas each, well inside a 30M-gas block


def alone_subject(town_id: int, user_id: int) -> str:
    """The daily counter of what `user_id` issued in `town_id` without a second approver."""
    return f"issue-alone:{town_id}:{user_id}"


class IssuingService(IssuingPreview, IssuingStatus):
    """Issuing over one DB session: preview (preview.py), progress (status.py), and here
    confirm, approve and queueing the chunks on chain."""

    def issue_one(
        self,
        actor: User | None,
        town: Town,
        *,
        recipient: object,
        amount: object,
        programme_id: object,
        reason: object,
        key: object,
        note: object = "",
    ) -> IssuanceBatch:
        """Issue to one person: a batch of one, previewed and confirmed at once. A recipient
        or amount that does not resolve is refused (InvalidInput) and nothing is written."""
        actor = require_town_role(actor, town.id, STAFF)
        why, k = _reason(reason), _key(key)
        prog = self._programme(actor, town, programme_id)
        found = self._by_key(town, actor, k)
        if found is not None:
            return found
        parse_amount(amount)  # InvalidAmount before anything is written
        text = recipient.strip() if isinstance(recipient, str) else ""
        raw = RawRow(2, text, str(amount).strip(), note.strip() if isinstance(note, str) else "")
        resolved = self._resolve(town, [raw])
        first = resolved[0]
        if first.status != READY:
            self.session.rollback()
            raise InvalidInput(
                first.error, field="recipient", **json.loads(first.error_args or "{}")
            )
        batch = self._preview(actor, town, [raw], prog, why, k, "single", "", resolved=resolved)
        return self.confirm(actor, batch.id)

    # ------------------------------------------------------------------ confirm and approve

    def confirm(self, actor: User | None, batch_id: object) -> IssuanceBatch:
        """Staff confirm a previewed batch: its chunks are queued, or it waits for a second
        member of staff when its total is above the town's four-eyes amount. Confirming again
        (or ten times at once) returns the batch and queues nothing more."""
        batch = self._batch(batch_id)
        actor = require_town_role(actor, batch.town_id, STAFF)
        if batch.state != PREVIEWED:
            return batch
        if batch.ready_rows == 0:
            raise IssuanceNotReady(
                N_("No row can be issued: correct the file and upload it again.")
            )
        self._still_issuable(batch)
        limit = limits.town_limit(self.session, batch.town_id, FOUR_EYES_FIELD)
        target = AWAITING_APPROVAL if int(batch.total) > limit else CONFIRMED
        now = self._now()
        alone: dict[str, int] = {}
        if target == CONFIRMED:
            # The four-eyes amount holds for what one person issues alone in a JST day, not
            # only per issuance: otherwise ten issuances just under it (or a batch split in
            # two) needed nobody else. A confirm that would take the person's day past it
            # waits for a second member of staff. The day's counter is ONE guarded UPDATE
            # (merchants/limits.py spend): confirms at once never pass it together; it rolls
            # back with this transaction if another confirm of the batch wins.
            try:
                limits.spend(
                    self.session,
                    alone_subject(batch.town_id, actor.id),
                    limits.jst_day(now),
                    int(batch.total),
                    limit,
                )
            except limits.DailyLimitReached:
                target = AWAITING_APPROVAL
                alone = {"over_the_day_alone": limit}
        won = self.session.execute(
            update(IssuanceBatch)
            .where(IssuanceBatch.id == batch.id, IssuanceBatch.state == PREVIEWED)
            .values(
                state=target,
                confirmed_by=actor.id,
                confirmed_at=now,
                four_eyes_amount=Decimal(limit),
            )
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]  # another confirm won
            self.session.rollback()
            return self._batch(batch.id)
        try:
            self.session.refresh(batch)
            self._audit(actor, batch, "points.issuance.confirm", state=target, **alone)
            if target == CONFIRMED:
                self._queue_chunks(f"user:{actor.id}", batch)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return batch

    def approve(self, actor: User | None, batch_id: object) -> IssuanceBatch:
        """Four eyes: another member of the town's staff than the one who created or
        confirmed the batch approves it, and its chunks are queued. Approving again returns
        the batch."""
        batch = self._batch(batch_id)
        actor = require_town_role(actor, batch.town_id, STAFF)
        if batch.state in (APPROVED, SENDING, DONE, FAILED) and batch.approved_by is not None:
            return batch
        if batch.state != AWAITING_APPROVAL:
            raise IssuanceNotReady(N_("This issuance is not waiting for approval."))
        if actor.id in (batch.created_by, batch.confirmed_by):
            raise SecondApproverRequired(
                N_("Another member of staff must approve: you created or confirmed this issuance.")
            )
        self._still_issuable(batch)
        won = self.session.execute(
            update(IssuanceBatch)
            .where(IssuanceBatch.id == batch.id, IssuanceBatch.state == AWAITING_APPROVAL)
            .values(state=APPROVED, approved_by=actor.id, approved_at=self._now())
            .execution_options(synchronize_session=False)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            return self._batch(batch.id)
        try:
            self.session.refresh(batch)
            self._audit(actor, batch, "points.issuance.approve")
            self._queue_chunks(f"user:{actor.id}", batch)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return batch

    def _still_issuable(self, batch: IssuanceBatch) -> None:
        """IssuanceNotReady when the batch's programme was closed (or its change not yet
        confirmed) since the preview: the chain would refuse every chunk (gas spent, the
        batch failed, its held rows claimed for nothing)."""
        town = self.session.get(Town, batch.town_id)
        if town is None or batch.programme_id not in {
            p.programme_id for p in self.issuable_programmes(town)
        }:
            raise IssuanceNotReady(
                N_(
                    "This programme cannot issue points now (it was closed or is being "
                    "changed). Preview the issuance again with an open programme."
                )
            )

    def _audit(self, actor: User, batch: IssuanceBatch, action: str, **details: Any) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action=action,
                subject_type="issuance_batch",
                subject_id=str(batch.id),
                amount=batch.total,
                reason=batch.reason,
                details={
                    "town_id": batch.town_id,
                    "programme_id": batch.programme_id,
                    "recipients": batch.ready_rows,
                    **details,
                },
            )
        )

    def _queue_chunks(self, actor: str, batch: IssuanceBatch) -> None:
        """One outbox row per CHUNK_SIZE ready rows (in line order), in the caller's
        transaction; the key issuing.batch:<id>:chunk:<n> makes a repeat a no-op. `actor` is
        the audit's ("user:<id>", or "service:<id>" for a service's API request)."""
        town = self.session.get(Town, batch.town_id)
        if town is None or not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        pid, chain_reason = batch.programme_id, self._chain_reason(town.id, batch.programme_id)
        rows = list(
            self.session.scalars(
                select(IssuanceRow)
                .where(IssuanceRow.batch_id == batch.id, IssuanceRow.status == READY)
                .order_by(IssuanceRow.line)
            )
        )
        outbox = self._outbox()
        for n, start in enumerate(range(0, len(rows), CHUNK_SIZE)):
            part = rows[start : start + CHUNK_SIZE]
            amounts = [int(r.amount or 0) for r in part]
            chunk = IssuanceChunk(
                batch_id=batch.id,
                number=n,
                recipients=len(part),
                total=Decimal(sum(amounts)),
                status=QUEUED,
            )
            self.session.add(chunk)
            self.session.flush()
            tx = outbox.enqueue(
                self.session,
                ContractCall(
                    town.points_address,
                    "issueBatch",
                    ([str(r.address) for r in part], amounts, pid, chain_reason),
                    artifact_name="RegionPoints",
                ),
                sender=Sender.role("issuer", town_id=town.id),
                key=f"issuing.batch:{batch.id}:chunk:{n}",
                subject=Subject("issuance_chunk", chunk.id),
                audit=AuditEntry(
                    actor=actor,
                    action="points.issue_batch",
                    subject_type="issuance_batch",
                    subject_id=str(batch.id),
                    amount=sum(amounts),
                    reason=batch.reason,
                    details={
                        "town_id": town.id,
                        "programme_id": pid,
                        "chunk": n,
                        "recipients": len(part),
                    },
                ),
            )
            chunk.outbox_tx_id = tx.id
            for r in part:
                r.status = QUEUED
                r.chunk_id = chunk.id
        # Rows for addresses no account verified: a claim each, held in its claim wallet.
        self.claims.hold(
            town_id=town.id,
            programme_id=pid,
            batch_id=batch.id,
            rows=[HeldRow(r.id, str(r.address), int(r.amount or 0)) for r in rows if r.held],
            actor=actor,
            reason=batch.reason,
        )


def issuing_service() -> IssuingService:
    """An IssuingService for the current app and request."""
    return IssuingService(
        get_db().session(),
        merchants=merchant_service(),
        settings=town_settings_service(),
        claims=claim_service(),
        outbox=chain.outbox_service,
    )
