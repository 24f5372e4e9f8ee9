"""What a service hears about its issuances: the seam to webhooks (issue 14 §2).

Issuing calls `on_chunk_settled` (registered by backend/composition.py through issuing's
`on_rows_settled`) in the transaction that settles a chunk's rows: the indexer's when its
PointsBatchIssued is seen (confirmed), the outbox follower's when the call failed. Each of the
service's issuances in the chunk moves its `announced` state once (a reorg that takes a
confirmation back and gives it again announces nothing twice) and `issuance_state_changed` is
called once per issuance and state, in that same transaction.

The move of `announced` is ONE guarded UPDATE per slice of the chunk's issuances (`announced`
still another state), and only the issuances it moved are announced and counted: followers
running at once (issuing's beat, a service reading its issuance, the indexer) change each
issuance once. An issuance moved to failed gives its points back to the service's budgets
(budgets.give_back: nothing was issued, and without it a service whose chunk failed was refused
later issuances for points it never gave), with one audit row "integrations.budget_released"
per service and period; one confirmed after it failed (a late PointsBatchIssued) is counted
again ("integrations.budget_recounted").

`issuance_state_changed` queues the event with the webhooks domain (ADR 0020:
`queue_delivery`, one delivery per event id `issuance:<id>:<state>`, signed and retried by the
worker) for the service's endpoint (owner `api_service:<id>`, set in the console's Webhooks
section); a service with no endpoint gets nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.core.models import AuditLog
from backend.integrations import budgets
from backend.integrations.models import CONFIRMED, FAILED, ApiIssuance
from backend.integrations.service_webhooks import webhook_owner
from backend.issuing.for_services import rows_of_chunk
from backend.issuing.models import ROW_CONFIRMED, ROW_FAILED, IssuanceChunk
from backend.webhooks.services import queue_delivery

_STATES = {ROW_CONFIRMED: CONFIRMED, ROW_FAILED: FAILED}


def event_payload(issuance: ApiIssuance, state: str, chunk: IssuanceChunk) -> dict[str, Any]:
    return {
        "id": issuance.id,
        "status": state,
        "idempotency_key": issuance.idempotency_key,
        "recipient": issuance.recipient,
        "amount": int(issuance.amount),
        "programme": issuance.programme_id,
        "tx_hash": chunk.tx_hash if state == CONFIRMED else None,
        "failure_reason": (chunk.error or None) if state == FAILED else None,
    }


def issuance_state_changed(
    session: Session, issuance: ApiIssuance, state: str, payload: dict[str, Any]
) -> None:
    """An issuance of a service reached `state` (confirmed or failed), in the transaction that
    settled it: queue its webhook event (once per issuance and state: the event id)."""
    queue_delivery(
        session,
        owner=webhook_owner(issuance.service_account_id),
        event_id=f"issuance:{issuance.id}:{state}",
        event_type=f"issuance.{state}",
        payload=payload,
    )


def on_chunk_settled(session: Session, chunk: IssuanceChunk, row_status: str) -> None:
    """Issuing's rows of `chunk` became confirmed or failed: announce the service issuances
    among them that were not announced in this state yet, and follow their budgets."""
    state = _STATES.get(row_status)
    if state is None:
        return
    row_ids = rows_of_chunk(session, chunk.id)
    if not row_ids:
        return
    for start in range(0, len(row_ids), 500):
        part = row_ids[start : start + 500]
        recounted: list[int] = []
        if state == CONFIRMED:
            # First those that had failed: their budget was given back and is counted again.
            recounted = _announce(session, part, state, only_from=FAILED)
        moved = sorted({*recounted, *_announce(session, part, state)})
        if not moved:
            continue
        issuances = list(
            session.scalars(
                select(ApiIssuance)
                .where(ApiIssuance.id.in_(moved))
                .order_by(ApiIssuance.id)
                .execution_options(populate_existing=True)
            )
        )
        if state == FAILED:
            _follow_budgets(session, issuances, chunk, released=True)
        elif recounted:
            again = set(recounted)
            _follow_budgets(session, [i for i in issuances if i.id in again], chunk, released=False)
        for issuance in issuances:
            issuance_state_changed(session, issuance, state, event_payload(issuance, state, chunk))
    session.flush()


def _announce(
    session: Session, row_ids: Sequence[int], state: str, *, only_from: str | None = None
) -> list[int]:
    """Move the issuances of `row_ids` not yet announced in `state` (only those announced in
    `only_from`, when given) to `state`, as ONE guarded UPDATE; the ids this call moved."""
    where = [ApiIssuance.row_id.in_(list(row_ids)), ApiIssuance.announced != state]
    if only_from is not None:
        where.append(ApiIssuance.announced == only_from)
    result = session.execute(
        update(ApiIssuance)
        .where(*where)
        .values(announced=state)
        .returning(ApiIssuance.id)
        .execution_options(synchronize_session=False)
    )
    return [int(i) for i in result.scalars()]


def _follow_budgets(
    session: Session, issuances: Sequence[ApiIssuance], chunk: IssuanceChunk, *, released: bool
) -> None:
    """Give the issuances' points back to (or count them again on) the budgets of the day and
    month each was counted against, with one audit row per service and period."""
    groups: dict[tuple[int, Any], list[ApiIssuance]] = {}
    for i in issuances:
        groups.setdefault((i.service_account_id, budgets.periods(i.created_at)), []).append(i)
    for (service_id, (day, month)), items in groups.items():
        amount = sum(int(i.amount) for i in items)
        at = items[0].created_at
        if released:
            budgets.give_back(session, service_id, amount, at)
        else:
            budgets.count_again(session, service_id, amount, at)
        session.add(
            AuditLog(
                actor="system:outbox",
                action=(
                    "integrations.budget_released" if released else "integrations.budget_recounted"
                ),
                subject_type="service_account",
                subject_id=str(service_id),
                amount=amount,
                reason=(
                    "issuances failed on chain: nothing was issued, the budget is given back"
                    if released
                    else "issuances that had failed were confirmed on chain: counted again"
                ),
                details={
                    "issuances": [i.id for i in items][:100],
                    "count": len(items),
                    "chunk_id": chunk.id,
                    "day": day.isoformat(),
                    "month": month.isoformat(),
                    "error": (chunk.error or "")[:500] if released else "",
                },
                town_id=items[0].town_id,
            )
        )
