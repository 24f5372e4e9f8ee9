"""A ticket check-in whose usePerk call failed on chain: "processing" -> "failed".

A check-in is "processing" until PerkUsed is indexed, and a processing check-in counts as a use
already made (uses left = the perk's uses - the uses the indexer saw - the check-ins processing),
so that two quick scans cannot both take the last use. A call the outbox ends as failed,
reverted or cancelled is never mined (short of a reorg, which handlers.py follows: a PerkUsed
that arrives after all marks the check-in done), so before this the check-in stayed processing
for ever and the holder lost a use of what they paid for: "no uses left" at the venue.

Each change is ONE conditional UPDATE on the check-in's status and its call's id, so followers
running at once (the beat task `shop.fail_lost_checkins`, the venue's look-up, "my collection")
change it once and write one audit row ("nft.use_perk_failed"; the use's own audit row is
"nft.use_perk"): PostgreSQL re-checks the row after the winner's lock, SQLite has one writer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.core.models import AuditLog
from backend.shop.models import CheckIn, Collection

PROCESSING, FAILED = "processing", "failed"


def fail_lost_check_ins(session: Session, *where: Any) -> int:
    """Mark the processing check-ins (those matching `where`, e.g. one ticket's) whose call
    failed on chain "failed", giving their use back (chain.api follow_failed_calls: once
    whoever follows). Returns how many this call changed."""

    def moved(row: CheckIn, _call: int, tx: chain.OutboxState) -> None:
        contract = session.scalar(
            select(Collection.contract_address).where(Collection.id == row.collection_id)
        )
        session.add(
            AuditLog(
                actor="system:outbox",
                action="nft.use_perk_failed",
                subject_type="token",
                subject_id=f"{contract}:{row.token_id}",
                reason=f"check-in: perk {row.perk_id} not marked on chain; the use is given back",
                details={
                    "check_in_id": row.id,
                    "holder": row.holder_address,
                    "perk_id": row.perk_id,
                    "tx_state": tx.state,
                    "error": tx.error,
                },
                town_id=row.town_id,
            )
        )

    return chain.follow_failed_calls(
        session,
        CheckIn,
        status=CheckIn.status,
        waiting=PROCESSING,
        call=CheckIn.outbox_tx_id,
        values={"status": FAILED},
        moved=moved,
        where=where,
    )
