"""Indexer handlers: a partnership becomes active when both towns' PartnerSet events are
confirmed, and every PartnerPaymentAccepted becomes a `PartnerPayment` row of the clearing;
each is undone by its revert hook on a reorg (the statement follows the chain)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.chain.api import ChainEvent, EventHandler, handler
from backend.partners.models import ACTIVE, APPROVED, PartnerPayment, Partnership
from backend.partners.services import month_of
from backend.regions.models import Town

log = logging.getLogger(__name__)

POINTS = "RegionPoints"


def _towns(session: Session, chain_id: int) -> dict[str, Town]:
    return {
        str(t.points_address).lower(): t
        for t in session.scalars(
            select(Town).where(Town.chain_id == chain_id, Town.points_address.is_not(None))
        )
    }


def _block_time(ev: ChainEvent) -> dt.datetime:
    if ev.block_time is None:
        raise ValueError(f"event {ev.tx_hash}:{ev.log_index} has no block time")
    return dt.datetime.fromtimestamp(ev.block_time, dt.UTC)


def _partner_set(session: Session, events: Sequence[ChainEvent], undo: bool) -> None:
    for ev in events:
        towns = _towns(session, ev.chain_id)
        me = towns.get(ev.contract_address.lower())
        other = towns.get(str(ev.args["town"]).lower())
        if me is None or other is None or me.id == other.id:
            continue
        a, b = sorted((me.id, other.id))
        p = session.scalar(
            select(Partnership).where(Partnership.town_a_id == a, Partnership.town_b_id == b)
        )
        if p is None:
            continue
        side = p.side(me.id)
        accepted = bool(ev.args["accepted"])
        confirmed = accepted != undo  # an accept applied, or a withdrawal reverted
        setattr(p, f"{side}_confirmed_at", _block_time(ev) if confirmed else None)
        if p.a_confirmed_at is not None and p.b_confirmed_at is not None and p.status == APPROVED:
            p.status = ACTIVE
        elif (p.a_confirmed_at is None or p.b_confirmed_at is None) and p.status == ACTIVE:
            p.status = APPROVED
    session.flush()


def apply_partner_set(session: Session, events: Sequence[ChainEvent]) -> None:
    _partner_set(session, events, undo=False)


def revert_partner_set(session: Session, events: Sequence[ChainEvent]) -> None:
    _partner_set(session, events, undo=True)


def apply_partner_payments(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        towns = _towns(session, ev.chain_id)
        payer_town = towns.get(str(ev.args["payerTown"]).lower())
        merchant_town = towns.get(str(ev.args["merchantTown"]).lower())
        if payer_town is None or merchant_town is None:
            log.warning("partner payment %s:%s names an unknown town", ev.tx_hash, ev.log_index)
            continue
        at = _block_time(ev)
        session.add(
            PartnerPayment(
                chain_id=ev.chain_id,
                tx_hash=ev.tx_hash,
                log_index=ev.log_index,
                block_number=ev.block_number,
                block_time=at,
                month=month_of(at),
                payer_town_id=payer_town.id,
                merchant_town_id=merchant_town.id,
                merchant=str(ev.args["merchant"]),
                payer=str(ev.args["payer"]),
                amount=Decimal(int(ev.args["amount"])),
                ref=_hex(ev.args["ref"]),
            )
        )
    session.flush()


def _hex(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def revert_partner_payments(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        session.execute(
            delete(PartnerPayment).where(
                PartnerPayment.chain_id == ev.chain_id,
                PartnerPayment.tx_hash == ev.tx_hash,
                PartnerPayment.log_index == ev.log_index,
            )
        )


HANDLERS: tuple[EventHandler, ...] = (
    handler("PartnerSet", apply_partner_set, revert_partner_set, contract=POINTS),
    handler(
        "PartnerPaymentAccepted", apply_partner_payments, revert_partner_payments, contract=POINTS
    ),
)
