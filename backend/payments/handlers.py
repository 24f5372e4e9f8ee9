"""Indexer handlers of orders: an order is completed when its mint or buy is indexed."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain.indexer import ChainEvent, register_handler
from backend.nfts.handlers import outbox_tx_for
from backend.payments.models import Order


def _order_for(session: Session, ev: ChainEvent) -> Order | None:
    tx = outbox_tx_for(session, ev)
    if tx is not None:
        order = session.scalar(select(Order).where(Order.outbox_tx_id == tx.id))
        if order is not None:
            return order
    ref = ev.args.get("paymentRef")
    if ref:
        from backend.payments.services import _payment_ref_bytes

        for order in session.scalars(
            select(Order).where(Order.status == "processing", Order.payment_kind == "card")
        ):
            if _payment_ref_bytes(order.payment_ref).lower() == str(ref).lower():
                return order
    return None


def _minted(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        order = _order_for(session, ev)
        if order is not None and order.status in ("processing", "failed"):
            order.status = "completed"
            order.first_token_id = int(ev.args["firstTokenId"])
            order.error = None


def _minted_revert(session: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        order = _order_for(session, ev)
        if order is not None and order.status == "completed":
            order.status = "processing"
            order.first_token_id = None


register_handler("Purchased", _minted, _minted_revert, contract="PrimarySale")
register_handler("PaidOffChainMinted", _minted, _minted_revert, contract="PrimarySale")
