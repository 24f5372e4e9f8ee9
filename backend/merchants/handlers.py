"""Indexer handlers: merchants become active, charges paid, redemptions enter the town's queue
when the chain's events are confirmed; each is undone by its revert hook on a reorg."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import ChainEvent, EventHandler, handler
from backend.core.db import utcnow
from backend.merchants.models import (
    ACTIVE,
    PAID,
    PAYING,
    REDEEMING,
    REGISTERING,
    REQUESTED,
    SETTLED,
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


def _partner_key(ev: ChainEvent) -> str:
    return f"partner:{ev.chain_id}:{ev.tx_hash}:{ev.log_index}"


def apply_partner_payments(session: Session, events: Sequence[ChainEvent]) -> None:
    """A shop was paid with a partner town's points (payPartnerMerchant, burned in that town):
    the charge that sent it is paid, and the shop's own town owes the shop the amount in yen,
    so a settlement joins the town's queue at once ("requested": nothing is left to burn; the
    town clears the sum with the partner town)."""
    now = utcnow()
    for ev in events:
        if ev.subject is not None and ev.subject.kind == "charge":
            session.execute(
                update(Charge)
                .where(Charge.id == ev.subject.id, Charge.status.in_((PAYING, "failed")))
                .values(status=PAID, tx_hash=ev.tx_hash, paid_at=now)
            )
        merchant = session.scalar(select(Merchant).where(Merchant.address == ev.args["merchant"]))
        if merchant is None:
            continue
        key = _partner_key(ev)
        existing = session.scalar(select(Settlement).where(Settlement.idempotency_key == key))
        if existing is not None:  # replayed after a reorg: owed again
            session.execute(
                update(Settlement)
                .where(Settlement.id == existing.id, Settlement.status == SETTLEMENT_FAILED)
                .values(status=REQUESTED, tx_hash=ev.tx_hash, redeemed_at=now, failure_reason=None)
            )
            continue
        charge = (
            session.get(Charge, ev.subject.id)
            if ev.subject is not None and ev.subject.kind == "charge"
            else None
        )
        session.add(
            Settlement(
                town_id=merchant.town_id,
                merchant_id=merchant.id,
                amount=Decimal(int(ev.args["amount"])),
                ref="0x" + hashlib.sha256(key.encode()).hexdigest(),
                status=REQUESTED,
                idempotency_key=key,
                requested_by=(charge.payer_user_id or 0) if charge is not None else 0,
                tx_hash=ev.tx_hash,
                redeemed_at=now,
            )
        )
    session.flush()


def revert_partner_payments(session: Session, events: Sequence[ChainEvent]) -> None:
    """The partner payment left the chain: its charge is paying again, and its settlement is
    owed no more ("failed" with the reason) unless it was already paid in yen (an operator
    alert then: the town paid for a payment the chain no longer has)."""
    revert_transfers(session, events)
    for ev in events:
        key = _partner_key(ev)
        s = session.scalar(select(Settlement).where(Settlement.idempotency_key == key))
        if s is None:
            continue
        if s.status == SETTLED:
            chain.raise_alert(
                session,
                "partner_payment_reorged",
                f"settlement:{s.id}",
                f"settlement {s.id} was paid in yen but its partner payment {ev.tx_hash} "
                "left the chain",
            )
            continue
        session.execute(
            update(Settlement)
            .where(Settlement.id == s.id, Settlement.status != SETTLED)
            .values(
                status=SETTLEMENT_FAILED,
                failure_reason="the partner payment left the chain (reorg); nothing is owed",
            )
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
    handler(
        "PartnerPaymentAccepted", apply_partner_payments, revert_partner_payments, contract=POINTS
    ),
)
