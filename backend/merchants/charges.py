"""Charges a merchant takes: by QR (the customer pays a short code), by the customer's
single-use code (customer_codes.py) or by a printed card and the PIN pad (cards.py); the
payment in the town's or a partner town's points, relayed gasless (ERC-2771).
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import (
    FAILED_CALL_STATES,
    AuditEntry,
    ContractCall,
    Sender,
    Subject,
)
from backend.core.errors import N_, AppError, InvalidInput
from backend.core.idempotency import first_answer
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.times import as_utc
from backend.merchants import card_issue, cards, charge_state
from backend.merchants.customer_codes import CustomerCodes, charge_by_customer_code
from backend.merchants.errors import (
    ChargeExpired,
    ChargeNotCancellable,
    ChargeNotFound,
    ChargeNotPayable,
    IdempotencyKeyReused,
    MerchantNotActive,
)
from backend.merchants.models import (
    ACTIVE,
    BY_CARD,
    BY_CUSTOMER_CODE,
    BY_QR,
    CANCELLED,
    EXPIRED,
    FAILED,
    PAID,
    PAYING,
    PENDING,
    Charge,
    Merchant,
    ResidentCard,
)
from backend.merchants.registration import MerchantRegistration, _idempotency_key
from backend.points.errors import InsufficientPoints
from backend.points.services import parse_amount
from backend.regions.models import Town

CHARGE_TTL = dt.timedelta(minutes=15)
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_FAILED_TX = FAILED_CALL_STATES  # the outbox's: the call was never executed


def _short_code(n: int = 8) -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(n))


class MerchantCharges(MerchantRegistration):
    """Charges and the customers' codes and cards."""

    # ------------------------------------------------------------------ charges

    def _refresh(self, charge: Charge) -> Charge:
        """Move a charge past its expiry to "expired" and a paying one whose transaction
        failed to "failed" (the caller commits)."""
        if charge.status == PENDING and as_utc(charge.expires_at) <= self._now():
            charge.status = EXPIRED
        elif charge.status == PAYING and charge.outbox_tx_id is not None:
            state = chain.outbox_state(self.session, charge.outbox_tx_id)
            if state in _FAILED_TX:
                charge.status = FAILED
        return charge

    def create_charge(
        self, user: User | None, merchant_id: object, amount: object, idempotency_key: object
    ) -> Charge:
        """A pending charge of `amount` points with a short code for the customer's QR.
        The same key again returns the first charge; with another amount: IdempotencyKeyReused."""
        merchant = self.require_staff(user, merchant_id)
        assert user is not None  # noqa: S101 - checked by require_staff
        value = parse_amount(amount)
        key = f"charge:{merchant.id}:{_idempotency_key(idempotency_key)}"
        existing = self.session.scalar(select(Charge).where(Charge.idempotency_key == key))
        if existing is not None:
            return self._same(existing, value)
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        charge = self.new_charge(merchant, value, key, BY_QR, user)
        try:
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            existing = self.session.scalar(select(Charge).where(Charge.idempotency_key == key))
            if existing is None:
                raise
            return self._same(existing, value)
        return charge

    @staticmethod
    def _same(existing: Charge, value: int) -> Charge:
        if int(existing.amount) != value:
            raise IdempotencyKeyReused(N_("This request key was already used for another amount."))
        return existing

    def new_charge(
        self,
        merchant: Merchant,
        value: int,
        key: str,
        method: str,
        created_by: User,
        *,
        now: dt.datetime | None = None,
        ttl: dt.timedelta = CHARGE_TTL,
        payer: User | None = None,
        helper: User | None = None,
    ) -> Charge:
        """A pending charge of `value` points with a fresh short code, added to the session
        (QR, customer-code and card charges alike; the caller flushes or commits). `helper` is
        the staff member who takes a code or card payment for the customer."""
        now = now or self._now()
        charge = Charge(
            merchant_id=merchant.id,
            town_id=merchant.town_id,
            amount=Decimal(value),
            status=PENDING,
            idempotency_key=key,
            code=_short_code(),
            method=method,
            created_by=created_by.id,
            payer_user_id=payer.id if payer is not None else None,
            helper_user_id=helper.id if helper is not None else None,
            created_at=now,
            expires_at=now + ttl,
        )
        self.session.add(charge)
        return charge

    def charge_by_code(self, code: object) -> Charge:
        """The charge with this short code (expiry applied); ChargeNotFound otherwise."""
        if not isinstance(code, str) or not code.isalnum() or len(code) > 16:
            raise ChargeNotFound(N_("There is no such payment request."))
        charge = self.session.scalar(select(Charge).where(Charge.code == code.upper()))
        if charge is None:
            raise ChargeNotFound(N_("There is no such payment request."))
        before = charge.status
        self._refresh(charge)
        if charge.status != before:
            self.session.commit()
        return charge

    def charge_status(self, user: User | None, merchant_id: object, charge_id: object) -> Charge:
        """A merchant's charge, refreshed (for the merchant's screen to poll)."""
        merchant = self.require_staff(user, merchant_id)
        charge = self.session.get(Charge, i) if (i := db_id_or_none(charge_id)) else None
        if charge is None or charge.merchant_id != merchant.id:
            raise ChargeNotFound(N_("There is no such payment request."))
        before = charge.status
        self._refresh(charge)
        if charge.status != before:
            self.session.commit()
        return charge

    def cancel_charge(self, user: User | None, merchant_id: object, charge_id: object) -> Charge:
        """The shop's staff cancel a charge nobody has started to pay (the customer cannot
        afford it, or changed their mind): audited, once; cancelling it again returns it as it
        is. A charge being paid, paid, failed or expired cannot be cancelled
        (ChargeNotCancellable, nothing changed)."""
        charge = self.charge_status(user, merchant_id, charge_id)
        assert user is not None  # noqa: S101 - checked by charge_status
        if charge.status == CANCELLED:
            return charge
        # One guarded UPDATE decides between this and a payment (pay_charge claims the charge
        # the same way): whichever commits first wins, on PostgreSQL and SQLite alike.
        won = self.claim_pending(charge.id, CANCELLED)
        if won:
            self.session.add(
                AuditLog(
                    actor=f"user:{user.id}",
                    action="merchants.charge_cancel",
                    subject_type="charge",
                    subject_id=str(charge.id),
                    amount=int(charge.amount),
                    reason="charge cancelled by the shop's staff",
                    details={"merchant_id": charge.merchant_id},
                )
            )
        self.session.commit()
        self.session.refresh(charge)
        if charge.status == CANCELLED:
            return charge
        raise ChargeNotCancellable(
            N_("This payment request can no longer be cancelled: it is being paid or is over.")
        )

    def claim_pending(self, charge_id: int, status: str) -> bool:
        """Move a still-pending, unexpired charge to `status` in one UPDATE (no commit); False
        when it is no longer pending. It takes the row's lock (PostgreSQL) or the database's
        write lock (SQLite) until the caller's transaction ends."""
        result = self.session.execute(
            update(Charge)
            .where(
                Charge.id == charge_id,
                Charge.status == PENDING,
                Charge.expires_at > self._now(),
            )
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def pay_charge(self, user: User | None, code: object, points_town: object = None) -> Charge:
        """The signed-in customer pays a pending charge: a gasless transfer of points to the
        merchant, signed by the customer's built-in account and relayed. With `points_town`
        (a town's slug) other than the shop's, the customer pays with that partner town's
        points (payPartnerMerchant; NotPartners unless the towns' partnership is active, with
        nothing queued). Paying again the same charge changes nothing. Raises ChargeExpired,
        ChargeNotPayable (paid by someone else, failed), InsufficientPoints, MerchantNotActive."""
        if user is None:
            raise AuthenticationRequired(N_("Please sign in."))
        found = self.charge_by_code(code)
        payer_town = self._points_town(found, points_town)
        # Re-read under a row lock: two taps of "pay" must not both pay.
        charge = self.session.scalars(
            select(Charge).where(Charge.id == found.id).with_for_update()
        ).one()
        if charge.method != BY_QR:  # a card or code charge is paid by its own path only
            self.session.rollback()
            raise ChargeNotPayable(N_("This payment request can no longer be paid."))
        if charge.status in (PAYING, PAID) and charge.payer_user_id == user.id:
            self.session.commit()
            return charge
        if charge.status == EXPIRED:
            self.session.rollback()
            raise ChargeExpired(N_("This payment request has expired. Ask the shop for a new one."))
        # The read above locks nothing on SQLite: claim the charge with a guarded UPDATE so a
        # cancel (cancel_charge) committed since cannot be overwritten by this payment.
        if charge.status != PENDING or not self.claim_pending(charge.id, PENDING):
            self.session.rollback()
            raise ChargeNotPayable(N_("This payment request can no longer be paid."))
        merchant = self.merchant(charge.merchant_id)
        try:
            if payer_town is not None:
                self.queue_partner_payment(charge, merchant, user, payer_town)
            else:
                self.queue_payment(
                    charge, merchant, user, actor=f"user:{user.id}", action="points.pay"
                )
            charge.payer_user_id = user.id
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return charge

    def _points_town(self, charge: Charge, slug: object) -> Town | None:
        """The partner town whose points pay `charge` (None: the shop's own town's points)."""
        if slug is None or slug == "":
            return None
        town = (
            self.session.scalar(select(Town).where(Town.slug == slug))
            if isinstance(slug, str)
            else None
        )
        if town is None:
            raise InvalidInput(N_("There is no such town."), field="points_town")
        if town.id == charge.town_id:
            return None
        self.partners.require_active(town, self.session.get(Town, charge.town_id))  # type: ignore[arg-type]
        return town

    def payment_options(self, user: User | None, charge: Charge) -> list[tuple[Town, int]]:
        """The towns whose points `user` may pay `charge` with: the shop's town, then its active
        partner towns, each with the points available."""
        if user is None:
            return []
        own = self.session.get(Town, charge.town_id)
        assert own is not None  # noqa: S101 - a foreign key
        try:
            address = self._user_address(user)
        except ChargeNotPayable:
            return []
        towns = [own, *self.partners.active_partners(own)]
        return [(t, self.points.summary(t, address).available) for t in towns if t.points_address]

    def points_town_of(self, charge: Charge) -> Town | None:
        """The town whose points paid `charge` (None until it is being paid)."""
        return self.session.get(Town, charge.points_town_id) if charge.points_town_id else None

    def points_towns(self, charges: list[Charge]) -> dict[int, Town]:
        """The towns whose points paid `charges`, by id (for a list of charges)."""
        ids = {c.points_town_id for c in charges if c.points_town_id}
        if not ids:
            return {}
        return {t.id: t for t in self.session.scalars(select(Town).where(Town.id.in_(ids)))}

    def queue_partner_payment(
        self, charge: Charge, merchant: Merchant, payer: User, payer_town: Town
    ) -> None:
        """Check the payer's points of partner town `payer_town` and queue the relayed
        payPartnerMerchant on that town's points (no commit): the points are burned there and
        the event is the claim the shop's town clears with `payer_town`."""
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        town = self.town_of(merchant)
        self.partners.require_active(payer_town, town)
        address = self._user_address(payer)
        summary = charge_state.payer_summary(
            self.session, self.points, payer_town, payer.id, address
        )
        amount = int(charge.amount)
        if summary.available < amount:
            raise InsufficientPoints(
                N_("Not enough points: %(available)d available, %(amount)d needed."),
                available=summary.available,
                amount=amount,
            )
        ref = "0x" + f"charge:{charge.id}".encode().hex().ljust(64, "0")
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                str(payer_town.points_address),
                "payPartnerMerchant",
                (str(town.points_address), merchant.address, amount, ref),
                artifact_name="RegionPoints",
            ),
            sender=Sender.user(self._user_signer(payer), town_id=payer_town.id, user_id=payer.id),
            key=f"merchants.charge:{charge.id}:pay",
            subject=Subject("charge", charge.id),
            audit=AuditEntry(
                actor=f"user:{payer.id}",
                action="points.pay_partner",
                subject_type="charge",
                subject_id=str(charge.id),
                amount=amount,
                reason=f"payment to merchant {merchant.id} with partner town points",
                details={
                    "merchant_id": merchant.id,
                    "payer_user_id": payer.id,
                    "points_town_id": payer_town.id,
                },
            ),
        )
        charge.outbox_tx_id = tx.id
        charge.points_town_id = payer_town.id
        charge.status = PAYING

    def queue_payment(
        self,
        charge: Charge,
        merchant: Merchant,
        payer: User,
        *,
        actor: str,
        action: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Check the payer's points and queue the relayed transfer (no commit). QR charges,
        customer codes and cards (customer_codes.py, cards.py) all pay through here."""
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        town = self.town_of(merchant)
        address = self._user_address(payer)
        summary = charge_state.payer_summary(self.session, self.points, town, payer.id, address)
        amount = int(charge.amount)
        if summary.available < amount:
            raise InsufficientPoints(
                N_("Not enough points: %(available)d available, %(amount)d needed."),
                available=summary.available,
                amount=amount,
            )
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                str(town.points_address),
                "transfer",
                (merchant.address, amount),
                artifact_name="RegionPoints",
            ),
            sender=Sender.user(self._user_signer(payer), town_id=town.id, user_id=payer.id),
            key=f"merchants.charge:{charge.id}:pay",
            subject=Subject("charge", charge.id),
            audit=AuditEntry(
                actor=actor,
                action=action,
                subject_type="charge",
                subject_id=str(charge.id),
                amount=amount,
                reason=f"payment to merchant {merchant.id}",
                details={"merchant_id": merchant.id, "payer_user_id": payer.id, **(details or {})},
            ),
        )
        charge.outbox_tx_id = tx.id
        charge.points_town_id = town.id
        charge.status = PAYING

    # ------------------------------------------------------------------ customer codes and cards

    def issue_card(
        self, actor: User | None, town: Town, user: User, pin: object, replace: bool = False
    ) -> ResidentCard:
        """A printed card for a resident in `town` (card_issue.issue_card)."""
        return card_issue.issue_card(self.session, actor, town, user, pin, self._now(), replace)

    def issue_card_by_email(
        self, actor: User | None, town: Town, email: object, replace: bool = False
    ) -> tuple[ResidentCard, str]:
        """Town STAFF issue a printed card to the resident with `email`: returns the card and
        its new 6-digit PIN, which is shown once (to print) and only stored hashed."""
        require_town_role(actor, town.id, STAFF)
        user = self.user_by_email(email)
        pin = cards.new_pin()
        return self.issue_card(actor, town, user, pin, replace=replace), pin

    def charge_customer(
        self,
        staff: User | None,
        merchant_id: object,
        amount: object,
        customer_code: object,
        idempotency_key: object,
        pin: object = None,
    ) -> tuple[Charge, str | None]:
        """The merchant takes a payment from a customer's single-use code (phone) or starts one
        from a printed card: (charge, PIN-pad token or None). A code is claimed for this shop
        and amount and pays at once; a card charge waits for the resident's PIN on the pad
        (cards.py). The shop never sends a PIN (PinNotAccepted). Audit-logged with the staff
        member who took it; within the town's daily limit per customer."""
        merchant = self.require_staff(staff, merchant_id)
        assert staff is not None  # noqa: S101
        if pin is not None:
            raise cards.PinNotAccepted(
                N_("The shop does not send the PIN: the resident types it on the PIN pad."),
                field="pin",
            )
        value = parse_amount(amount)
        key = f"charge:{merchant.id}:{_idempotency_key(idempotency_key)}"
        code = customer_code.strip().upper() if isinstance(customer_code, str) else ""
        existing = self.session.scalar(select(Charge).where(Charge.idempotency_key == key))
        if existing is not None:
            return self._same_customer(existing, value, code), None
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))

        def take() -> tuple[Charge, str | None]:
            if code.startswith("C"):
                return cards.start_card_charge(self, staff, merchant, value, code, key)
            return charge_by_customer_code(self, staff, merchant, value, code, key), None

        def twin() -> tuple[Charge, str | None] | None:
            existing = self.session.scalar(select(Charge).where(Charge.idempotency_key == key))
            return (self._same_customer(existing, value, code), None) if existing else None

        # A double submit: the twin with this key may commit after the look-up above and use
        # the single-use code; the refusal that follows ("code used") gives way to the twin's
        # charge, as a lost race on the key's UNIQUE constraint does.
        try:
            return first_answer(self.session, take, twin, also=(AppError,))
        except Exception:
            self.session.rollback()
            raise

    def _same_customer(self, existing: Charge, value: int, code: str) -> Charge:
        """`_same`, and taken with the same customer's code or card: a request key already
        used for one customer never answers for another (IdempotencyKeyReused), whose code
        or card is left as it was."""
        self._same(existing, value)
        if existing.method == BY_CUSTOMER_CODE:
            same = CustomerCodes(self.session, self._secret).paid(code, existing.id)
        elif existing.method == BY_CARD:
            same = cards.card_code_of(self.session, existing.id) == code
        else:  # a QR charge (create_charge) took this key: it names no customer
            same = False
        if not same:
            raise IdempotencyKeyReused(
                N_("This request key was already used for another customer.")
            )
        return existing

    def issue_customer_code(self, user: User) -> tuple[str, dt.datetime]:
        """A fresh single-use code for the signed-in customer, and its expiry."""
        return CustomerCodes(self.session, self._secret).issue(user.id, self._now())

    def customer_code_holder(self, code: str) -> int | None:
        """The customer a valid single-use code names now (nothing claimed), else None."""
        return CustomerCodes(self.session, self._secret).holder(code, self._now())

    def card_holders(self, town: Town, codes: list[str]) -> dict[str, int]:
        """The resident of each of `codes` that is a printed card of `town` (cards.py)."""
        return cards.card_holders(self.session, town.id, codes)

    def card_holder_for_use(self, town: Town, code: str) -> int | None:
        """The resident of printed card `code` of `town` shown to be used; CardLocked for a
        card the town locked (cards.py)."""
        return cards.card_holder_for_use(self.session, town.id, code)

    def submit_pin(self, staff: User | None, token: object, pin: object) -> Charge:
        return cards.submit_pin(self, staff, token, pin)

    def now(self) -> dt.datetime:
        return self._now()

    @property
    def secret(self) -> bytes:
        return self._secret
