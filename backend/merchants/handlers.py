"""Indexer handlers: merchants become active, charges paid, redemptions enter the town's queue
when the chain's events are confirmed; each is undone by its revert hook on a reorg."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.chain.api import ChainEvent, EventHandler, handler
from backend.core.db import utcnow
from backend.merchants.models import (
    ACTIVE,
    PAID,
    PAYING,
    REDEEMING,
    REGISTERING,
    REQUESTED,
    SETTLEMENT_FAILED,
    SUSPENDED,
    Charge,
    Merchant,
    Settlement,
)

POINTS = "RegionPoints"


def _set_status(session: Session, events: Sequence[ChainEvent], status: str) -> None:
    for ev in events:
        session.execute(
            update(Merchant).where(Merchant.address == ev.args["merchant"]).values(status=status)
        )


def apply_added(session: Session, events: Sequence[ChainEvent]) -> None:
    _set_status(session, events, ACTIVE)


def revert_added(session: Session, events: Sequence[ChainEvent]) -> None:
    _set_status(session, events, REGISTERING)


def apply_suspended(session: Session, events: Sequence[ChainEvent]) -> None:
    _set_status(session, events, SUSPENDED)


def revert_suspended(session: Session, events: Sequence[ChainEvent]) -> None:
    _set_status(session, events, ACTIVE)


def apply_transfers(session: Session, events: Sequence[ChainEvent]) -> None:
    merchants = set(
        session.scalars(
            select(Merchant.address).where(Merchant.address.in_({ev.args["to"] for ev in events}))
        )
    )
    now = utcnow()
    for ev in events:
        # The charge whose payment sent this transfer (the indexer names it: ev.subject).
        if ev.args["to"] not in merchants or ev.subject is None or ev.subject.kind != "charge":
            continue
        session.execute(
            update(Charge)
            .where(Charge.id == ev.subject.id, Charge.status.in_((PAYING, "failed")))
            .values(status=PAID, tx_hash=ev.tx_hash, paid_at=now)
        )


def revert_transfers(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        session.execute(
            update(Charge)
            .where(Charge.tx_hash == ev.tx_hash, Charge.status == PAID)
            .values(status=PAYING, tx_hash=None, paid_at=None)
        )


def apply_partner_payments(session: Session, events: Sequence[ChainEvent]) -> None:
    """A charge paid with a partner town's points (payPartnerMerchant on that town's points)."""
    now = utcnow()
    for ev in events:
        if ev.subject is None or ev.subject.kind != "charge":
            continue
        session.execute(
            update(Charge)
            .where(Charge.id == ev.subject.id, Charge.status.in_((PAYING, "failed")))
            .values(status=PAID, tx_hash=ev.tx_hash, paid_at=now)
        )


def apply_redeemed(session: Session, events: Sequence[ChainEvent]) -> None:
    now = utcnow()
    for ev in events:
        ref = str(ev.args["ref"]).lower()
        session.execute(
            # The chain is the truth: a burn seen on chain is requested even if its outbox row
            # was judged failed (settlement_state.refresh_failed) before the event arrived.
            update(Settlement)
            .where(Settlement.ref == ref, Settlement.status.in_((REDEEMING, SETTLEMENT_FAILED)))
            .values(status=REQUESTED, tx_hash=ev.tx_hash, redeemed_at=now, failure_reason=None)
        )


def revert_redeemed(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        ref = str(ev.args["ref"]).lower()
        session.execute(
            update(Settlement)
            .where(Settlement.ref == ref, Settlement.status == REQUESTED)
            .values(status=REDEEMING, tx_hash=None, redeemed_at=None)
        )


HANDLERS: tuple[EventHandler, ...] = (
    handler("MerchantAdded", apply_added, revert_added, contract=POINTS),
    handler("MerchantSuspended", apply_suspended, revert_suspended, contract=POINTS),
    handler("Transfer", apply_transfers, revert_transfers, contract=POINTS),
    handler("PointsRedeemed", apply_redeemed, revert_redeemed, contract=POINTS),
    # The charge's payment with partner points: undone like a transfer (by its tx hash).
    handler("PartnerPaymentAccepted", apply_partner_payments, revert_transfers, contract=POINTS),
)
