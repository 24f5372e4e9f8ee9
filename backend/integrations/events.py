"""What a service hears about its issuances: the seam to webhooks (issue 14 §2).

Issuing calls `on_chunk_settled` (registered by backend/composition.py through issuing's
`on_rows_settled`) in the transaction that settles a chunk's rows: the indexer's when its
PointsBatchIssued is seen (confirmed), the outbox follower's when the call failed. Each of the
service's issuances in the chunk moves its `announced` state once (a reorg that takes a
confirmation back and gives it again announces nothing twice) and `issuance_state_changed` is
called once per issuance and state, in that same transaction.

`issuance_state_changed` queues the event with the webhooks domain (ADR 0020:
`queue_delivery`, one delivery per event id `issuance:<id>:<state>`, signed and retried by the
worker) for the service's endpoint (owner `api_service:<id>`, set in the console's Webhooks
section); a service with no endpoint gets nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
    among them that were not announced in this state yet."""
    state = _STATES.get(row_status)
    if state is None:
        return
    row_ids = rows_of_chunk(session, chunk.id)
    if not row_ids:
        return
    for start in range(0, len(row_ids), 500):
        for issuance in session.scalars(
            select(ApiIssuance)
            .where(
                ApiIssuance.row_id.in_(row_ids[start : start + 500]),
                ApiIssuance.announced != state,
            )
            .order_by(ApiIssuance.id)
        ):
            issuance.announced = state
            issuance_state_changed(session, issuance, state, event_payload(issuance, state, chunk))
    session.flush()
