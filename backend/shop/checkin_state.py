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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.core.models import AuditLog
from backend.shop.models import CheckIn, Collection

PROCESSING, FAILED = "processing", "failed"
FAILED_TX = ("failed", "reverted", "cancelled")


def fail_lost_check_ins(session: Session, *where: Any) -> int:
    """Mark the processing check-ins (those matching `where`, e.g. one ticket's) whose call
    failed on chain "failed", giving their use back. Commits when it changed a row; returns how
    many this call changed."""
    rows = session.scalars(
        select(CheckIn).where(
            CheckIn.status == PROCESSING,
            chain.outbox_state_in(CheckIn.outbox_tx_id, FAILED_TX),
            *where,
        )
    ).all()
    if not rows:
        return 0
    txs = chain.outbox_states(session, (int(r.outbox_tx_id or 0) for r in rows), only=FAILED_TX)
    changed = 0
    for row in rows:
        tx = txs.get(int(row.outbox_tx_id or 0))
        if tx is None:
            continue
        done = session.execute(
            update(CheckIn)
            .where(
                CheckIn.id == row.id,
                CheckIn.status == PROCESSING,
                CheckIn.outbox_tx_id == row.outbox_tx_id,
            )
            .values(status=FAILED)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            continue  # another follower got there first, or PerkUsed was indexed meanwhile
        changed += 1
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
    if changed:
        session.commit()
    for row in rows:
        session.refresh(row)
    return changed
