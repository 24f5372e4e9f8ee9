"""A person buys points by card: checkout -> the provider's signed webhook -> the points issued
on chain under the town's paid programme (issuer key, outbox) -> the lot on the points page.

Money rules:
- Limits: a checkout reserves its yen on the month's counters of the person and the town
  (backend/premium/limits.py) in the transaction that writes the purchase, so concurrent
  checkouts never pass a limit together. At payment the reservation is checked again: a
  payment for a purchase whose reservation was released (the checkout expired) reserves
  again, and is refunded when that would pass a limit now. The paid programme's daily caps are
  counted at payment (JST day of `paid_at`); a purchase refunded because its issue kept failing
  gives them back with its monthly limits, once (the reconcile's row lock and re-read).
- Once per purchase: the buy form's key is UNIQUE per user (a replay is the same purchase);
  a webhook changes a purchase only from `pending_payment` (or `expired`), under a row lock,
  so a webhook delivered ten times issues once; the outbox key `premium:<public id>:<attempt>`
  is UNIQUE.
- Refunds: bought points are never refunded (資金決済法 第20条; docs/adr/0018). The card payment
  is refunded only when nothing was delivered: the issue kept failing on chain, the payment
  came for a purchase that can no longer be fulfilled, or its amount is not the price.
- Audit: "premium.sale" at payment (yen), "points.issue" with each issue (points, with the
  outbox row), "payment.refund" for each refund.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.roles import require_user
from backend.chain import api as chain
from backend.chain.api import (
    FAILED_CALL_STATES,
    AuditEntry,
    ContractCall,
    OutboxService,
    Sender,
    Subject,
)
from backend.core.db import utcnow
from backend.core.errors import N_, AppError, InvalidInput, ServiceUnavailable
from backend.core.idempotency import first_answer
from backend.core.models import AuditLog
from backend.core.numbers import ascii_int
from backend.core.upsert import lock_row
from backend.points.errors import PointsNotAvailable
from backend.points.programmes import PAID_PREMIUM
from backend.points.town_settings import (
    check_request_key,
    jst_day,
    release_daily,
    reserve_daily,
)
from backend.premium.errors import LimitReached, OfferNotAvailable, PurchaseNotFound
from backend.premium.limits import jst_month, release, reserve
from backend.premium.models import (
    DECLINED,
    EXPIRED,
    FAILED,
    PENDING_PAYMENT,
    PROCESSING,
    REFUNDED,
    PremiumPurchase,
)
from backend.premium.offers import OfferService
from backend.regions.models import Town
from backend.shop.providers import DECLINED as EVENT_DECLINED
from backend.shop.providers import PAID as EVENT_PAID
from backend.shop.providers import CheckoutOrder, PaymentEvent, PaymentProvider

log = logging.getLogger(__name__)

PREFIX = "pp_"  # public ids of purchases (the provider's webhook dispatches on it)
CHECKOUT_TTL = dt.timedelta(hours=1)  # an unpaid checkout gives its reservation back after
MAX_ISSUE_ATTEMPTS = 3  # then the payment is refunded
FAILED_TX_STATES = FAILED_CALL_STATES  # the outbox's: the call was never executed


@dataclass(frozen=True)
class Placed:
    purchase: PremiumPurchase
    redirect_url: str
    created: bool


def parse_yen(value: object, unit: int, most: int) -> int:
    """A whole number of units of yen from `unit` to `most`; InvalidInput otherwise."""
    yen = ascii_int(value)
    if yen is None or not unit <= yen <= most or yen % unit:
        raise InvalidInput(
            N_("Choose an amount from %(min)s to %(max)s yen, in steps of %(unit)s yen."),
            field="yen",
            min=f"{unit:,}",
            max=f"{most:,}",
            unit=f"{unit:,}",
        )
    return yen


class PurchaseService:
    """Purchases of points by card over one DB session."""

    def __init__(
        self,
        session: Session,
        *,
        outbox: Callable[[], OutboxService],
        provider: Callable[[], PaymentProvider],
        public_url: str = "",
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._outbox = outbox
        self._provider = provider
        self.public_url = public_url.rstrip("/")
        self._now = now
        self.offers = OfferService(session, now=self._now)

    # ------------------------------------------------------------------ checkout

    def checkout(self, user: User | None, town: Town, yen: object, request_key: object) -> Placed:
        """Open a card checkout for `yen` of the town's offer; the same form key returns the
        first purchase. Raises AuthenticationRequired, InvalidInput (key, amount),
        OfferNotAvailable, LimitReached, PointsNotAvailable (no built-in wallet) and
        ServiceUnavailable (the provider did not answer: nothing is held)."""
        user = user or require_user()
        key = check_request_key(request_key)
        if (first := self._by_key(user.id, key)) is not None:
            return Placed(first, self._next_url(first), created=False)
        quote = self.offers.quote(town, user)
        if quote is None:
            raise OfferNotAvailable(N_("This town does not sell points at the moment."))
        offer, programme = quote.offer, quote.programme
        amount = parse_yen(yen, offer.unit_yen, offer.max_yen_per_purchase)
        address = self._custodial_address(user)
        month = jst_month(self._now())
        purchase = PremiumPurchase(
            public_id=PREFIX + secrets.token_hex(12),
            request_key=key,
            town_id=town.id,
            user_id=user.id,
            address=address,
            yen=amount,
            points=offer.points_for(amount),
            premium_percent=offer.premium_percent,
            programme_id=programme.programme_id,
            expiry_days=programme.expiry_days,
            status=PENDING_PAYMENT,
            reserved_month=month,
            provider=self._provider().name,
        )

        def write() -> PremiumPurchase:
            try:
                self.session.add(purchase)
                self.session.flush()  # a concurrent twin's key fails here, or at the commit
                reserve(self.session, offer, user.id, amount, month)
                self.session.commit()
            except AppError:
                self.session.rollback()
                raise
            return purchase

        placed = first_answer(self.session, write, lambda: self._by_key(user.id, key))
        if placed is not purchase:
            return Placed(placed, self._next_url(placed), created=False)
        return Placed(purchase, self._open_checkout(purchase, town), created=True)

    def _open_checkout(self, purchase: PremiumPurchase, town: Town) -> str:
        """Ask the provider for the checkout page (after the commit: no lock is held while it
        answers). If it fails, the purchase fails and gives its reservation back."""
        page = f"{self.public_url}/points/purchases/{purchase.public_id}"
        try:
            return self._provider().create_checkout(
                CheckoutOrder(
                    public_id=purchase.public_id,
                    payment_ref=purchase.public_id,
                    amount_yen=int(purchase.yen),
                    quantity=1,
                    description=f"{town.name_en} points {int(purchase.points):,}",
                    success_url=page,
                    cancel_url=page,
                    test_checkout_url=f"/points/buy/test-checkout/{purchase.public_id}",
                )
            )
        except ServiceUnavailable:
            if self._claim(purchase, (PENDING_PAYMENT,), FAILED):
                purchase.error = "checkout not opened"
                self._release(purchase)
                self.session.commit()
            raise

    def resume_checkout(self, user: User | None, public_id: str) -> str:
        """The checkout page again for the user's unpaid purchase (the provider answers the
        same session for the same purchase); its status page once it is no longer unpaid."""
        p = self.get(user, public_id)
        town = self.session.get(Town, p.town_id)
        if p.status != PENDING_PAYMENT or town is None:
            return self._next_url(p)
        return self._open_checkout(p, town)

    def cancel(self, user: User | None, public_id: str) -> PremiumPurchase:
        """The user gives up an unpaid checkout: it ends as `expired` and gives its limits
        back at once. A payment the provider still completes later is handled as a late one
        (reserved again, or refunded). Anything but an unpaid purchase is left as it is."""
        p = self.get(user, public_id)
        if self._claim(p, (PENDING_PAYMENT,), EXPIRED):
            p.error = "cancelled by the buyer"
            self._release(p)
            self.session.commit()
        return p

    # ------------------------------------------------------------------ provider events

    def apply_payment_event(self, provider: PaymentProvider, event: PaymentEvent) -> str:
        """Apply a verified provider event once (dispatched by the shop's webhook, see
        backend/shop/payment_targets.py): paid -> the points are issued, declined -> nothing is
        issued and the reservation is given back. "processed", "duplicate" or "ignored"."""
        p = self._find(event.order_public_id or "")
        if (
            p is None
            or p.provider != provider.name
            or event.kind not in (EVENT_PAID, EVENT_DECLINED)
        ):
            return "ignored"
        if event.kind == EVENT_DECLINED:
            if not self._claim(p, (PENDING_PAYMENT,), DECLINED):
                return "duplicate"
            self._release(p)
            self.session.commit()
            return "processed"
        # Paid: the guarded UPDATE is the once-only gate (ten deliveries at once: one wins).
        if not self._claim(p, (PENDING_PAYMENT, EXPIRED), PROCESSING):
            return "duplicate"
        p.provider_payment_id = event.payment_id
        # One moment for both: the day of `paid_at` is the day whose programme caps the points
        # are counted against below, and a refund later gives them back to that day.
        now = self._now()
        p.paid_at = now
        if event.amount_yen is None or int(event.amount_yen) != int(p.yen):
            self._refund(p, f"paid {event.amount_yen} yen, expected {p.yen}")
        elif not self._hold_limits(p):
            self._refund(p, "a limit was reached before the payment arrived")
        else:
            self._sale_audit(p)
            try:
                # The paid programme's daily caps count bought points too (any issuing path).
                with self.session.begin_nested():
                    reserve_daily(
                        self.session,
                        p.town_id,
                        int(p.programme_id),
                        p.user_id,
                        int(p.points),
                        jst_day(now),
                        self.offers.programme_row(p.town_id, int(p.programme_id)),
                    )
            except AppError as exc:
                self._refund(p, f"programme daily cap: {exc.message}")
            else:
                self._enqueue_issue(p)
        self.session.commit()
        return "processed"

    def _claim(self, p: PremiumPurchase, from_states: tuple[str, ...], to: str) -> bool:
        """Move the purchase to `to` if it is in one of `from_states`, atomically (PostgreSQL
        re-checks the row after a concurrent writer commits; SQLite has one writer): False
        when another delivery or the sweep got there first (then nothing is written)."""
        moved = self.session.execute(
            update(PremiumPurchase)
            .where(PremiumPurchase.id == p.id, PremiumPurchase.status.in_(from_states))
            .values(status=to)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if moved != 1:
            self.session.rollback()
            return False
        self.session.refresh(p)
        return True

    def _sale_audit(self, p: PremiumPurchase) -> None:
        self.session.add(
            AuditLog(
                actor=f"payment:{p.provider}",
                action="premium.sale",
                subject_type="premium_purchase",
                subject_id=str(p.id),
                amount=p.yen,
                reason=f"points bought by card: {p.yen} yen for {p.points} points",
                details={
                    "town_id": p.town_id,
                    "user_id": p.user_id,
                    "public_id": p.public_id,
                    "points": int(p.points),
                    "premium_percent": p.premium_percent,
                    "programme_id": int(p.programme_id),
                    "payment_id": p.provider_payment_id,
                },
                town_id=p.town_id,
            )
        )

    def _hold_limits(self, p: PremiumPurchase) -> bool:
        """Check again at payment: a live reservation still holds; a released one (the
        checkout expired) must fit the limits of the current month again."""
        if p.reserved_month is not None:
            return True
        offer = self.offers.offer_by_town_id(p.town_id)
        if offer is None:
            return False
        month = jst_month(self._now())
        try:
            with self.session.begin_nested():
                reserve(self.session, offer, p.user_id, int(p.yen), month)
        except LimitReached:
            return False
        p.reserved_month = month
        return True

    def _enqueue_issue(self, p: PremiumPurchase) -> None:
        town = self.session.get(Town, p.town_id)
        if town is None or not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        p.issue_attempts += 1
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                str(town.points_address),
                "issue",
                (p.address, int(p.points), int(p.programme_id), PAID_PREMIUM.reason),
                artifact_name="RegionPoints",
            ),
            sender=Sender.role("issuer", town_id=p.town_id),
            key=f"premium:{p.public_id}:{p.issue_attempts}",
            subject=Subject("premium_purchase", p.id),
            audit=AuditEntry(
                actor=f"payment:{p.provider}",
                action="points.issue",
                subject_type="premium_purchase",
                subject_id=str(p.id),
                amount=int(p.points),
                reason="points bought with a premium",
                details={
                    "town_id": p.town_id,
                    "user_id": p.user_id,
                    "public_id": p.public_id,
                    "yen": int(p.yen),
                    "programme_id": int(p.programme_id),
                    "attempt": p.issue_attempts,
                },
            ),
        )
        p.outbox_tx_id = tx.id

    def _refund(self, p: PremiumPurchase, reason: str, *, daily_day: dt.date | None = None) -> None:
        """Give the card payment back (nothing was delivered), release the limits, audit.
        With `daily_day`, the purchase's points held the paid programme's daily caps of that
        JST day (it was paid and its issue queued): they are given back too."""
        ref = self._provider().refund(p.provider_payment_id or p.public_id)
        p.status = REFUNDED
        p.refund_ref = ref
        p.error = reason
        self._release(p)
        released: dict[str, object] = {}
        if daily_day is not None:
            # Off the town's and the person's totals of that day, in the order and under the
            # locks that added them (never below 0).
            release_daily(
                self.session, p.town_id, int(p.programme_id), p.user_id, int(p.points), daily_day
            )
            released = {"daily_cap_released": int(p.points), "daily_cap_day": str(daily_day)}
        self.session.add(
            AuditLog(
                actor=f"payment:{p.provider}",
                action="payment.refund",
                subject_type="premium_purchase",
                subject_id=str(p.id),
                amount=p.yen,
                reason=f"points not delivered: {reason}",
                details={
                    "town_id": p.town_id,
                    "public_id": p.public_id,
                    "refund_ref": ref,
                    "payment_id": p.provider_payment_id,
                    **released,
                },
                town_id=p.town_id,
            )
        )
        log.warning("premium purchase %s refunded: %s", p.public_id, reason)

    @staticmethod
    def _daily_day(p: PremiumPurchase) -> dt.date | None:
        """The JST day whose programme caps a paid purchase's points were counted against
        (apply_payment_event counts them on the day of `paid_at`)."""
        return jst_day(p.paid_at) if p.paid_at is not None else None

    def _release(self, p: PremiumPurchase) -> None:
        if p.reserved_month is not None:
            release(self.session, p.town_id, p.user_id, int(p.yen), p.reserved_month)
            p.reserved_month = None

    # ------------------------------------------------------------------ periodic work

    def reconcile(self) -> dict[str, int]:
        """Issues that failed on chain are sent again, and their payment refunded after
        MAX_ISSUE_ATTEMPTS; checkouts unpaid after CHECKOUT_TTL give their reservation back.
        Idempotent (the beat task `premium.reconcile_purchases`)."""
        done = {"retried": 0, "refunded": 0, "expired": 0}
        failed = self.session.scalars(
            select(PremiumPurchase)
            .where(
                PremiumPurchase.status == PROCESSING,
                chain.outbox_state_in(PremiumPurchase.outbox_tx_id, FAILED_TX_STATES),
            )
            .with_for_update(skip_locked=True)
        ).all()
        states = chain.outbox_states(self.session, (p.outbox_tx_id or 0 for p in failed))
        for p in failed:
            tx_id = p.outbox_tx_id or 0
            tx = states.get(tx_id)
            if tx is None or tx.state not in FAILED_TX_STATES:
                continue
            # Another reconcile (an overlapping beat run, a second worker) may have retried or
            # refunded it since the SELECT: FOR UPDATE does nothing on SQLite, and its locks
            # went with the first commit below. Take the row's write lock, read it again, and
            # act only if it still waits on the same failed call: one retry, one refund.
            lock_row(self.session, PremiumPurchase.status, PremiumPurchase.id == p.id)
            self.session.refresh(p)
            if p.status != PROCESSING or p.outbox_tx_id != tx_id:
                self.session.commit()
                continue
            if p.issue_attempts < MAX_ISSUE_ATTEMPTS:
                self._enqueue_issue(p)
                done["retried"] += 1
            else:
                # Paid and counted against the programme's daily caps, and nothing was issued:
                # the caps are given back with the limits (under the row lock above: once).
                self._refund(
                    p,
                    f"issue failed {p.issue_attempts} times: {tx.error or tx.state}",
                    daily_day=self._daily_day(p),
                )
                done["refunded"] += 1
            self.session.commit()
        stale = self.session.scalars(
            select(PremiumPurchase).where(
                PremiumPurchase.status == PENDING_PAYMENT,
                PremiumPurchase.created_at < self._now() - CHECKOUT_TTL,
            )
        ).all()
        for p in stale:
            # A payment may arrive at the same moment: the guarded UPDATE decides.
            if self._claim(p, (PENDING_PAYMENT,), EXPIRED):
                self._release(p)
                self.session.commit()
                done["expired"] += 1
        self.session.commit()
        return done

    # ------------------------------------------------------------------ reading

    def get(self, user: User | None, public_id: str) -> PremiumPurchase:
        """The user's own purchase; PurchaseNotFound (404) for anyone else's."""
        user = user or require_user()
        p = self.session.scalar(
            select(PremiumPurchase).where(PremiumPurchase.public_id == str(public_id)[:40])
        )
        if p is None or p.user_id != user.id:
            raise PurchaseNotFound(N_("There is no such purchase."))
        return p

    def town_of(self, p: PremiumPurchase) -> Town:
        town = self.session.get(Town, p.town_id)
        assert town is not None  # noqa: S101 - a foreign key
        return town

    def purchases_of(self, user: User, town: Town, limit: int = 20) -> list[PremiumPurchase]:
        return list(
            self.session.scalars(
                select(PremiumPurchase)
                .where(PremiumPurchase.user_id == user.id, PremiumPurchase.town_id == town.id)
                .order_by(PremiumPurchase.id.desc())
                .limit(limit)
            )
        )

    def _by_key(self, user_id: int, key: str) -> PremiumPurchase | None:
        return self.session.scalar(
            select(PremiumPurchase).where(
                PremiumPurchase.user_id == user_id, PremiumPurchase.request_key == key
            )
        )

    def _find(self, public_id: str) -> PremiumPurchase | None:
        if not public_id.startswith(PREFIX):
            return None
        return self.session.scalar(
            select(PremiumPurchase).where(PremiumPurchase.public_id == public_id[:40])
        )

    def _next_url(self, p: PremiumPurchase) -> str:
        return f"/points/purchases/{p.public_id}"

    def _custodial_address(self, user: User) -> str:
        address = self.session.scalar(
            select(Address.address)
            .where(Address.user_id == user.id, Address.kind == CUSTODIAL)
            .order_by(Address.id)
        )
        if address is None:
            raise PointsNotAvailable(N_("This account has no built-in wallet."))
        return str(address)
