"""Indexer handlers: RegionPoints events -> `PointsEntry` rows (and platform grants confirmed).

Within one chunk the indexer calls handlers in registration order, so the Transfer handler below
always runs before the PointsIssued / PointsBatchIssued / PointsExpired ones of the same
transaction, which only add detail (programme, reason, expiry, kind) to the rows it wrote.
`PointsLotMoved` needs no handler: the lots are projected from the stored events by
backend/points/chain_lots.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import ZERO_ADDRESS, ChainEvent, EventHandler, handler
from backend.core.db import utcnow
from backend.points.models import (
    EXPIRED,
    GRANT_CONFIRMED,
    GRANT_PENDING,
    ISSUED,
    PAID,
    RECEIVED,
    REDEEMED,
    PointsEntry,
    PointsGrant,
)

POINTS = "RegionPoints"
DAY = 86_400
DAY_OFFSET = 9 * 3600  # expiry days start at 00:00 JST


def expiry_of(issued_at: dt.datetime, expiry_days: int) -> dt.datetime | None:
    """00:00 JST of day issueDay + expiryDays + 1, as RegionPoints.expiryOf computes it."""
    if expiry_days <= 0:
        return None
    day = (int(issued_at.timestamp()) + DAY_OFFSET) // DAY + expiry_days + 1
    return dt.datetime.fromtimestamp(day * DAY - DAY_OFFSET, dt.UTC)


def _expiry_days(session: Session, ev: ChainEvent) -> int:
    """The programme's expiryDays in force at the event's block (from indexed ProgrammeSet)."""
    rows = chain.indexed_events(
        session, ev.chain_id, ev.contract_address, ["ProgrammeSet"], to_block=ev.block_number
    )
    days = 0
    for r in rows:
        if int(r.args.get("programmeId", -1)) == int(ev.args["programmeId"]):
            days = int(r.args.get("expiryDays", 0))
    return days


def block_time(ev: ChainEvent) -> dt.datetime:
    """When the event's block was mined (the chain's clock, which RegionPoints uses for expiry),
    never when the indexer happened to see it: a backfill or a slow indexer sees it days later.
    The indexer read it with the block headers (ChainEvent.block_time): no call to the node."""
    if ev.block_time is None:
        raise ValueError(f"event {ev.tx_hash}:{ev.log_index} has no block time")
    return dt.datetime.fromtimestamp(ev.block_time, dt.UTC)


def _entry(ev: ChainEvent, holder: str, kind: str, counterparty: str | None, ids: dict[str, int]):
    return PointsEntry(
        chain_id=ev.chain_id,
        contract_address=ev.contract_address,
        holder=holder,
        kind=kind,
        amount=Decimal(int(ev.args["value"])),
        counterparty=counterparty,
        block_number=ev.block_number,
        tx_hash=ev.tx_hash,
        log_index=ev.log_index,
        outbox_tx_id=ids.get(ev.tx_hash),
        recorded_at=utcnow(),
    )


def apply_transfers(session: Session, events: Sequence[ChainEvent]) -> None:
    ids = chain.outbox_ids(session, (ev.tx_hash for ev in events))
    for ev in events:
        frm, to = ev.args["from"], ev.args["to"]
        if frm == ZERO_ADDRESS:
            session.add(_entry(ev, to, ISSUED, None, ids))
        elif to == ZERO_ADDRESS:
            session.add(_entry(ev, frm, REDEEMED, None, ids))
        else:
            session.add(_entry(ev, frm, PAID, to, ids))
            session.add(_entry(ev, to, RECEIVED, frm, ids))
    session.flush()


def revert_transfers(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        session.execute(
            delete(PointsEntry).where(
                PointsEntry.chain_id == ev.chain_id,
                PointsEntry.tx_hash == ev.tx_hash,
                PointsEntry.log_index == ev.log_index,
            )
        )


def apply_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    ids = chain.outbox_ids(session, (ev.tx_hash for ev in events))
    now = utcnow()
    for ev in events:
        # The mint's Transfer is the log just before PointsIssued.
        session.execute(
            update(PointsEntry)
            .where(
                PointsEntry.chain_id == ev.chain_id,
                PointsEntry.tx_hash == ev.tx_hash,
                PointsEntry.log_index == ev.log_index - 1,
                PointsEntry.kind == ISSUED,
            )
            .values(
                programme_id=int(ev.args["programmeId"]),
                reason=str(ev.args.get("reason", ""))[:500],
                expires_at=_issued_expiry(session, ev),
            )
        )
        tx_id = ids.get(ev.tx_hash)
        if tx_id is not None:
            # Whatever the grant's state: the chain is the truth, so a grant judged failed
            # whose call a reorg put back and mined is confirmed (its daily cap, given back
            # at the failure, is not counted again: the indexer takes no cap's lock).
            session.execute(
                update(PointsGrant)
                .where(PointsGrant.outbox_tx_id == tx_id)
                .values(status=GRANT_CONFIRMED, confirmed_at=now)
            )


def _issued_expiry(session: Session, ev: ChainEvent) -> dt.datetime | None:
    if "expiresAt" in ev.args:  # the event says it (RegionPoints since issue 10 §3)
        expires = int(ev.args["expiresAt"])
        return dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None
    days = _expiry_days(session, ev)
    return expiry_of(block_time(ev), days) if days > 0 else None


def revert_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    ids = chain.outbox_ids(session, (ev.tx_hash for ev in events))
    for ev in events:
        tx_id = ids.get(ev.tx_hash)
        if tx_id is not None:
            session.execute(
                update(PointsGrant)
                .where(PointsGrant.outbox_tx_id == tx_id)
                .values(status=GRANT_PENDING, confirmed_at=None)
            )


def apply_batch_issued(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        expires = int(ev.args.get("expiresAt", 0))
        session.execute(
            update(PointsEntry)
            .where(
                PointsEntry.chain_id == ev.chain_id,
                PointsEntry.tx_hash == ev.tx_hash,
                PointsEntry.log_index < ev.log_index,
                PointsEntry.kind == ISSUED,
                PointsEntry.programme_id.is_(None),
            )
            .values(
                programme_id=int(ev.args["programmeId"]),
                reason=str(ev.args.get("reason", ""))[:500],
                expires_at=dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None,
            )
        )


def apply_expired(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        session.execute(
            update(PointsEntry)
            .where(
                PointsEntry.chain_id == ev.chain_id,
                PointsEntry.tx_hash == ev.tx_hash,
                PointsEntry.log_index == ev.log_index - 1,
                PointsEntry.kind == REDEEMED,
            )
            .values(kind=EXPIRED)
        )


def apply_partner_paid(session: Session, events: Sequence[ChainEvent]) -> None:
    """Points paid at a partner town's shop are burned here: the burn's entry (the log just
    before PartnerPaymentAccepted) is a payment to that shop, not a redemption."""
    for ev in events:
        session.execute(
            update(PointsEntry)
            .where(
                PointsEntry.chain_id == ev.chain_id,
                PointsEntry.tx_hash == ev.tx_hash,
                PointsEntry.log_index == ev.log_index - 1,
                PointsEntry.kind == REDEEMED,
            )
            .values(kind=PAID, counterparty=str(ev.args["merchant"]))
        )


def _nothing(session: Session, events: Sequence[ChainEvent]) -> None:
    """The Transfer revert removes the rows these handlers only annotated."""


HANDLERS: tuple[EventHandler, ...] = (
    handler("Transfer", apply_transfers, revert_transfers, contract=POINTS),
    handler("PointsIssued", apply_issued, revert_issued, contract=POINTS),
    handler("PointsBatchIssued", apply_batch_issued, _nothing, contract=POINTS),
    handler("PointsExpired", apply_expired, _nothing, contract=POINTS),
    handler("PartnerPaymentAccepted", apply_partner_paid, _nothing, contract=POINTS),
)
