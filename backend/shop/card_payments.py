"""After an order is placed: card-provider webhooks (paid -> mint by the minter key, declined),
and reconciliation of orders whose chain transaction failed (token orders fail, card orders are
minted again, then refunded) and of card checkouts left unpaid (after CHECKOUT_TTL they give
their units back; a payment that still arrives is refunded).

A webhook delivered twice is processed once (`PaymentEventRecord`), and a mint has the payment
reference as its idempotency key. Every public method is one unit of work.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import FAILED_CALL_STATES, ContractCall, OutboxService, Sender, Subject
from backend.core.db import utcnow
from backend.core.idempotency import first_answer
from backend.core.models import AuditLog
from backend.core.upsert import lock_row
from backend.shop.catalog import sale_key
from backend.shop.models import CHECKOUT_EXPIRED, Order, PaymentEventRecord, payment_ref_bytes
from backend.shop.orders import mint_audit
from backend.shop.payment_targets import payment_target
from backend.shop.providers import DECLINED, PAID, PaymentProvider
from backend.shop.supply import set_status

log = logging.getLogger(__name__)

MAX_MINT_ATTEMPTS = 3
MAX_PUBLIC_ID = 40  # payment_orders.public_id and payment_events.order_public_id
FAILED_TX_STATES = FAILED_CALL_STATES  # the outbox's: the call was never executed
# A card checkout left unpaid this long gives its units back (a tourist who closed the payment
# page must not hold a limited edition for a day): declined with models.CHECKOUT_EXPIRED. Stripe's
# session is made to expire sooner (providers.STRIPE_CHECKOUT_LIFETIME), so a payment after it
# is a straggler at the boundary, or the test checkout's: it is refunded, never kept.
CHECKOUT_TTL = dt.timedelta(hours=1)


def _paid_after_expiry(order: Order, kind: str) -> bool:
    return kind == PAID and order.status == "declined" and order.checkout_expired


class CardPaymentService:
    """Card payments' events and the reconciliation of failed order transactions."""

    def __init__(
        self,
        session: Session,
        *,
        outbox: Callable[[], OutboxService],
        provider: Callable[[], PaymentProvider],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        """`provider` gives the configured card provider (refunds go to it)."""
        self.session = session
        self._outbox = outbox
        self._provider = provider
        self._now = now

    def handle_webhook(self, provider: PaymentProvider, payload: bytes, headers: Any) -> str:
        """Apply a provider event once: paid -> mint (minter key, via the outbox), declined ->
        declined. Returns "processed", "duplicate" or "ignored"; BadSignature changes nothing."""
        event = provider.parse_webhook(payload, headers)
        target = payment_target(event.order_public_id)
        if target is not None:  # another domain's purchase (points bought with a premium)
            return target().apply_payment_event(provider, event)
        if self.session.scalar(
            select(PaymentEventRecord.id).where(
                PaymentEventRecord.provider == provider.name,
                PaymentEventRecord.event_id == event.event_id,
            )
        ):
            return "duplicate"
        return first_answer(
            self.session, lambda: self._apply_event(provider, event), lambda: "duplicate"
        )

    def _apply_event(self, provider: PaymentProvider, event: Any) -> str:
        # A reference longer than our public ids is no order of ours (a checkout of the
        # account made elsewhere): recorded without it, not overflowing the column.
        ref = event.order_public_id
        if ref is not None and len(ref) > MAX_PUBLIC_ID:
            ref = None
        # The event's row is flushed with the order's lock below: a concurrent delivery of the
        # same event fails on its UNIQUE key there or at the commit (then: "duplicate").
        self.session.add(
            PaymentEventRecord(
                provider=provider.name,
                event_id=event.event_id,
                kind=event.kind,
                order_public_id=ref,
            )
        )
        order = None
        if ref:
            order = self.session.scalar(
                select(Order).where(Order.public_id == ref).with_for_update()
            )
        result = "ignored"
        if order is not None and order.status == "pending_payment":
            if event.kind == PAID:
                order.provider_payment_id = event.payment_id
                if event.amount_yen is None or int(event.amount_yen) != int(order.amount):
                    # Not the order's price (or not in yen): nothing is minted for it, and the
                    # money taken goes back (as premium purchases do).
                    log.error(
                        "order %s: paid %s, expected %s",
                        order.public_id,
                        event.amount_yen,
                        order.amount,
                    )
                    self._refund(
                        order,
                        "amount mismatch",
                        f"paid {event.amount_yen} yen, expected {int(order.amount)}",
                        amount=event.amount_yen,
                    )
                else:
                    order.status = "processing"
                    self._enqueue_mint(order)
                result = "processed"
            elif event.kind == DECLINED:
                set_status(self.session, order, "declined")
                result = "processed"
        elif order is not None and _paid_after_expiry(order, event.kind):
            # Its units went back when the checkout expired: the money goes back too.
            order.provider_payment_id = event.payment_id
            self._refund(
                order, CHECKOUT_EXPIRED, "paid after the checkout expired", amount=event.amount_yen
            )
            result = "processed"
        self.session.commit()
        return result

    def _enqueue_mint(self, order: Order) -> None:
        listing = order.listing
        order.mint_attempts += 1
        mint = [
            listing.chain_listing_id,
            order.buyer_address,
            order.quantity,
            payment_ref_bytes(order.payment_ref),
        ]
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(sale_key(listing.town), "mintPaidOffChain", mint),
            sender=Sender.role("minter", town_id=listing.town_id),
            key=f"mint:{order.payment_ref}:{order.mint_attempts}",
            subject=Subject("order", order.id),
            audit=mint_audit(order, listing, f"payment:{order.provider}"),
        )
        order.outbox_tx_id = tx.id

    # ----------------------------------------------------------------- reconciliation

    def reconcile(self) -> dict[str, int]:
        """Orders whose chain transaction failed: token orders fail (nothing was taken); card
        orders are minted again, and refunded after MAX_MINT_ATTEMPTS (the user sees it). Card
        checkouts unpaid after CHECKOUT_TTL are declined and give their units back."""
        done = {"failed": 0, "retried": 0, "refunded": 0, "expired": 0}
        # Locked and skipped when a webhook holds the order: its payment decides first.
        unpaid = self.session.scalars(
            select(Order)
            .where(
                Order.status == "pending_payment",
                Order.payment_kind == "card",
                Order.created_at < self._now() - CHECKOUT_TTL,
            )
            .with_for_update(skip_locked=True)
        ).all()
        for order in unpaid:
            set_status(self.session, order, "declined")
            order.error = CHECKOUT_EXPIRED
            done["expired"] += 1
        self.session.commit()
        orders = self.session.scalars(
            select(Order)
            .where(
                Order.status == "processing",
                chain.outbox_state_in(Order.outbox_tx_id, FAILED_TX_STATES),
            )
            .with_for_update(of=Order, skip_locked=True)
        ).all()
        txs = chain.outbox_states(self.session, (o.outbox_tx_id or 0 for o in orders))
        for order in orders:
            tx_id = order.outbox_tx_id or 0
            tx = txs.get(tx_id)
            if tx is None:  # not selected above: its transaction has not failed
                continue
            # Another reconcile (an overlapping beat run, a second worker) may have failed,
            # minted again or refunded it since the SELECT: FOR UPDATE does nothing on SQLite,
            # and its locks went with the first commit below. Take the row's write lock, read it
            # again, and act only if it still waits on the same failed call: one refund.
            lock_row(self.session, Order.status, Order.id == order.id)
            self.session.refresh(order)
            if order.status != "processing" or order.outbox_tx_id != tx_id:
                self.session.commit()
                continue
            reason = tx.error or tx.state
            if order.payment_kind != "card":
                set_status(self.session, order, "failed")
                order.error = reason
                done["failed"] += 1
            elif order.mint_attempts < MAX_MINT_ATTEMPTS:
                self._enqueue_mint(order)
                done["retried"] += 1
            else:
                self._refund(order, reason, f"mint failed {order.mint_attempts} times: {reason}")
                done["refunded"] += 1
            self.session.commit()
        return done

    def _refund(self, order: Order, error: str, why: str, amount: object = None) -> None:
        """Give the card payment back (`amount`: what was paid, if not the order's amount)."""
        provider = self._provider()
        refund_ref = provider.refund(order.provider_payment_id or order.payment_ref)
        set_status(self.session, order, "refunded")
        order.refund_ref = refund_ref
        order.error = error
        paid = amount if isinstance(amount, int) and not isinstance(amount, bool) else None
        self.session.add(
            AuditLog(
                actor=f"payment:{order.provider}",
                action="payment.refund",
                subject_type="order",
                subject_id=order.public_id,
                amount=order.amount if paid is None else paid,
                reason=why,
                details={"refund_ref": refund_ref, "payment_ref": order.payment_ref},
            )
        )
