"""Merchants: registration (town staff), charges paid by QR, by the customer's single-use code
(customer_codes.py) or by a printed card and the PIN pad (cards.py), sales, redemption (burn)
and the town's settlement queue (settlement_state.py).

Every public method is one unit of work: it commits what it changed, or raises an AppError
and leaves balances, outbox rows and the audit log as they were. Authorisation is checked here:
merchant staff act for their merchant, town staff (STAFF) register merchants and settle.
Payments are ERC-2771 requests signed by the payer's custodial key and relayed (gasless);
a charge becomes "paid" and a settlement "requested" only when the indexer sees the event.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.roles import STAFF, has_town_role, require_town_role
from backend.chain import api as chain
from backend.chain.api import (
    AuditEntry,
    ContractCall,
    KeyVault,
    OutboxService,
    Sender,
    Subject,
    get_vault,
    outbox_service,
)
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, Forbidden, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.purpose_keys import CUSTOMER_CODE, purpose_key_hex
from backend.merchants import card_issue, cards, charge_state, settlement_state, statement
from backend.merchants.customer_codes import CustomerCodes, charge_by_customer_code
from backend.merchants.errors import (
    ChargeExpired,
    ChargeNotFound,
    ChargeNotPayable,
    IdempotencyKeyReused,
    MerchantNotActive,
    MerchantNotFound,
    SettlementNotFound,
)
from backend.merchants.models import (
    ACTIVE,
    APPROVED,
    BY_QR,
    EXPIRED,
    FAILED,
    PAID,
    PAYING,
    PENDING,
    REDEEMING,
    REQUESTED,
    SETTLED,
    Charge,
    Merchant,
    MerchantStaff,
    ResidentCard,
    Settlement,
)
from backend.partners.services import PartnerService, chain_clock
from backend.points.errors import InsufficientPoints
from backend.points.models import RECEIVED, PointsEntry
from backend.points.services import PointsService, parse_amount
from backend.regions.models import Town

log = logging.getLogger(__name__)

CHARGE_TTL = dt.timedelta(minutes=15)
_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{6,100}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_FAILED_TX = ("failed", "reverted", "cancelled")


def _idempotency_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value):
        raise InvalidInput(
            N_("A request key (6-100 letters, digits or . _ : -) is required."),
            field="idempotency_key",
        )
    return value


def _text(value: object, field: str, max_len: int = 120) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > max_len:
        raise InvalidInput(
            N_("%(field)s must be text of 1 to %(max)d characters."), field=field, max=max_len
        )
    return value.strip()


def _short_code(n: int = 8) -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(n))


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class MerchantService:
    """Merchants over one DB session. `vault` and `outbox` are callables (built on first use);
    `secret` keys the customers' rotating codes."""

    def __init__(
        self,
        session: Session,
        *,
        vault: Callable[[], KeyVault],
        outbox: Callable[[], OutboxService],
        secret: str,
        now: Callable[[], dt.datetime] = utcnow,
        chain_now: Callable[[], int] = lambda: int(utcnow().timestamp()),
    ) -> None:
        self.session = session
        self._vault = vault
        self._outbox = outbox
        self._secret = secret.encode()
        self._now = now
        self.points = PointsService(session, outbox, now=now)
        self.partners = PartnerService(session, outbox=outbox, chain_now=chain_now, now=now)

    # ------------------------------------------------------------------ look-ups and rights

    def merchant(self, merchant_id: object) -> Merchant:
        m = self.session.get(Merchant, i) if (i := db_id_or_none(merchant_id)) else None
        if m is None:
            raise MerchantNotFound(N_("There is no such shop."))
        return m

    def shop_of_town(self, town: Town, merchant_id: object) -> Merchant:
        """The shop with this id if it is one of `town`'s (MerchantNotFound otherwise)."""
        m = self.merchant(merchant_id)
        if m.town_id != town.id:
            raise MerchantNotFound(N_("There is no such shop."))
        return m

    def town_of(self, merchant: Merchant) -> Town:
        town = self.session.get(Town, merchant.town_id)
        assert town is not None  # noqa: S101 - a foreign key
        return town

    def is_staff(self, user: User | None, merchant: Merchant) -> bool:
        if user is None:
            return False
        found = self.session.scalar(
            select(MerchantStaff.id).where(
                MerchantStaff.merchant_id == merchant.id, MerchantStaff.user_id == user.id
            )
        )
        return found is not None

    def require_staff(self, user: User | None, merchant_id: object) -> Merchant:
        """The merchant, if `user` works for it; AuthenticationRequired / Forbidden otherwise."""
        if user is None:
            raise AuthenticationRequired(N_("Please sign in."))
        merchant = self.merchant(merchant_id)
        if not self.is_staff(user, merchant):
            raise Forbidden(N_("You do not work for this shop."))
        return merchant

    def merchants_of(self, user: User) -> list[Merchant]:
        return list(
            self.session.scalars(
                select(Merchant)
                .join(MerchantStaff, MerchantStaff.merchant_id == Merchant.id)
                .where(MerchantStaff.user_id == user.id)
                .order_by(Merchant.id)
            )
        )

    def merchants_in(self, town: Town) -> list[Merchant]:
        return list(
            self.session.scalars(
                select(Merchant).where(Merchant.town_id == town.id).order_by(Merchant.id)
            )
        )

    def town_merchants(self, user: User | None, town: Town) -> list[Merchant]:
        """The town's shops, for town STAFF."""
        require_town_role(user, town.id, STAFF)
        return self.merchants_in(town)

    def _user_address(self, user: User) -> str:
        address = self.session.scalar(
            select(Address.address)
            .where(Address.user_id == user.id, Address.kind == CUSTODIAL)
            .order_by(Address.id)
        )
        if address is None:
            raise ChargeNotPayable(N_("This account has no built-in wallet."))
        return str(address)

    def _user_signer(self, user: User) -> Any:
        row = self.session.scalar(
            select(Address)
            .where(Address.user_id == user.id, Address.kind == CUSTODIAL)
            .order_by(Address.id)
        )
        if row is None:
            raise ChargeNotPayable(N_("This account has no built-in wallet."))
        return self._vault().signer(row.sealed_key())

    # ------------------------------------------------------------------ registration (STAFF)

    def register_merchant(
        self, actor: User | None, town: Town, name_ja: object, name_en: object
    ) -> Merchant:
        """Create a merchant with its own custodial points address and register it on chain
        (RegionPoints.addMerchant by the merchant_admin role key, through the outbox). STAFF only.
        The merchant is "registering" until MerchantAdded is indexed."""
        actor = require_town_role(actor, town.id, STAFF)
        ja = _text(name_ja, "name_ja")
        en = _text(name_en, "name_en")
        if not town.points_address:
            raise MerchantNotActive(N_("This town has no points yet."))
        sealed = self._vault().create_key()
        m = Merchant(
            town_id=town.id,
            name_ja=ja,
            name_en=en,
            registered_by=actor.id,
            **sealed.columns(),
        )
        self.session.add(m)
        try:
            self.session.flush()
            tx = self._outbox().enqueue(
                self.session,
                ContractCall(
                    town.points_address, "addMerchant", (m.address,), artifact_name="RegionPoints"
                ),
                sender=Sender.role("merchant_admin", town_id=town.id),
                key=f"merchants.add:{m.id}",
                subject=Subject("merchant", m.id),
                audit=AuditEntry(
                    actor=f"user:{actor.id}",
                    action="merchant.register",
                    subject_type="merchant",
                    subject_id=str(m.id),
                    reason="merchant registered by town staff",
                    details={"address": m.address, "town_id": town.id},
                ),
            )
            m.outbox_tx_id = tx.id
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return m

    def add_staff(self, actor: User | None, merchant: Merchant, user: User) -> MerchantStaff:
        """Make `user` staff of `merchant` (idempotent; AuditLog "merchant.staff_add" the first
        time). Town STAFF only."""
        actor = require_town_role(actor, merchant.town_id, STAFF)
        existing = self.session.scalar(
            select(MerchantStaff).where(
                MerchantStaff.merchant_id == merchant.id, MerchantStaff.user_id == user.id
            )
        )
        if existing is not None:
            return existing
        row = MerchantStaff(merchant_id=merchant.id, user_id=user.id)
        self.session.add(row)
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action="merchant.staff_add",
                subject_type="merchant",
                subject_id=str(merchant.id),
                reason="shop staff added by the town",
                details={"user_id": user.id, "email": user.email, "town_id": merchant.town_id},
                town_id=merchant.town_id,
            )
        )
        try:
            self.session.commit()
        except IntegrityError:  # a double submit won the race
            self.session.rollback()
            found = self.session.scalar(
                select(MerchantStaff).where(
                    MerchantStaff.merchant_id == merchant.id, MerchantStaff.user_id == user.id
                )
            )
            if found is None:
                raise
            return found
        return row

    def user_by_email(self, email: object) -> User:
        """The account with `email` (InvalidInput when there is none)."""
        text = email.strip().lower() if isinstance(email, str) else ""
        if not _EMAIL_RE.fullmatch(text) or len(text) > 254:
            raise InvalidInput(N_("Enter a valid email address."), field="email")
        user = self.session.scalar(select(User).where(User.email == text))
        if user is None:
            raise InvalidInput(
                N_("There is no account with this email address. Ask them to sign up first."),
                field="email",
            )
        return user

    def add_staff_by_email(
        self, actor: User | None, merchant_id: object, email: object
    ) -> MerchantStaff:
        """Town STAFF make the account with `email` staff of one of the town's shops."""
        merchant = self.merchant(merchant_id)
        require_town_role(actor, merchant.town_id, STAFF)
        return self.add_staff(actor, merchant, self.user_by_email(email))

    def remove_staff_by_email(self, actor: User | None, merchant_id: object, email: object) -> bool:
        """Town STAFF (and the town's admin) take the account with `email` off one of the
        town's shops. AuditLog "merchant.staff_remove" when a row went; False (nothing written)
        when they were not its staff (a repeated request)."""
        merchant = self.merchant(merchant_id)
        actor = require_town_role(actor, merchant.town_id, STAFF)
        user = self.user_by_email(email)
        gone = self.session.execute(
            delete(MerchantStaff).where(
                MerchantStaff.merchant_id == merchant.id, MerchantStaff.user_id == user.id
            )
        ).rowcount  # type: ignore[attr-defined]
        if not gone:
            self.session.rollback()
            return False
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action="merchant.staff_remove",
                subject_type="merchant",
                subject_id=str(merchant.id),
                reason="shop staff removed by the town",
                details={"user_id": user.id, "email": user.email, "town_id": merchant.town_id},
                town_id=merchant.town_id,
            )
        )
        self.session.commit()
        return True

    def staff_of(self, merchant: Merchant) -> list[User]:
        return list(
            self.session.scalars(
                select(User)
                .join(MerchantStaff, MerchantStaff.user_id == User.id)
                .where(MerchantStaff.merchant_id == merchant.id)
                .order_by(MerchantStaff.id)
            )
        )

    # ------------------------------------------------------------------ charges

    def _refresh(self, charge: Charge) -> Charge:
        """Move a charge past its expiry to "expired" and a paying one whose transaction
        failed to "failed" (the caller commits)."""
        if charge.status == PENDING and _as_utc(charge.expires_at) <= self._now():
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
        if charge.status != PENDING:
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
        pin = f"{secrets.randbelow(1_000_000):06d}"
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
        existing = self.session.scalar(select(Charge).where(Charge.idempotency_key == key))
        if existing is not None:
            return self._same(existing, value), None
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        code = customer_code.strip().upper() if isinstance(customer_code, str) else ""
        try:
            if code.startswith("C"):
                return cards.start_card_charge(self, staff, merchant, value, code, key)
            return charge_by_customer_code(self, staff, merchant, value, code, key), None
        except IntegrityError:
            self.session.rollback()
            existing = self.session.scalar(select(Charge).where(Charge.idempotency_key == key))
            if existing is None:
                raise
            return self._same(existing, value), None
        except Exception:
            self.session.rollback()
            raise

    def issue_customer_code(self, user: User) -> tuple[str, dt.datetime]:
        """A fresh single-use code for the signed-in customer, and its expiry."""
        return CustomerCodes(self.session, self._secret).issue(user.id, self._now())

    def customer_code_holder(self, code: str) -> int | None:
        """The customer a valid single-use code names now (nothing claimed), else None."""
        return CustomerCodes(self.session, self._secret).holder(code, self._now())

    def card_holders(self, town: Town, codes: list[str]) -> dict[str, int]:
        """The resident of each of `codes` that is a printed card of `town` (cards.py)."""
        return cards.card_holders(self.session, town.id, codes)

    def submit_pin(self, staff: User | None, token: object, pin: object) -> Charge:
        return cards.submit_pin(self, staff, token, pin)

    def now(self) -> dt.datetime:
        return self._now()

    @property
    def secret(self) -> bytes:
        return self._secret

    # ------------------------------------------------------------------ sales and redemption

    def sales(
        self,
        user: User | None,
        merchant_id: object,
        frm: dt.datetime | None = None,
        to: dt.datetime | None = None,
    ) -> list[tuple[PointsEntry, Charge | None]]:
        """Confirmed payments received (newest first), with the charge each one paid, if any.
        No payer identity: merchants see amounts only."""
        merchant = self.require_staff(user, merchant_id)
        town = self.town_of(merchant)
        q = select(PointsEntry).where(
            PointsEntry.chain_id == town.chain_id,
            PointsEntry.contract_address == town.points_address,
            PointsEntry.holder == merchant.address,
            PointsEntry.kind == RECEIVED,
        )
        if frm is not None:
            q = q.where(PointsEntry.recorded_at >= frm)
        if to is not None:
            q = q.where(PointsEntry.recorded_at < to)
        rows = list(self.session.scalars(q.order_by(PointsEntry.id.desc()).limit(1000)))
        ids = [r.outbox_tx_id for r in rows if r.outbox_tx_id is not None]
        charges = {
            c.outbox_tx_id: c
            for c in self.session.scalars(select(Charge).where(Charge.outbox_tx_id.in_(ids)))
        }
        return [(r, charges.get(r.outbox_tx_id)) for r in rows]

    def partner_sales(
        self, merchant: Merchant, frm: dt.datetime | None = None, to: dt.datetime | None = None
    ) -> list[Charge]:
        """Charges paid with a partner town's points (confirmed), oldest first."""
        q = select(Charge).where(
            Charge.merchant_id == merchant.id,
            Charge.status == PAID,
            Charge.points_town_id.is_not(None),
            Charge.points_town_id != Charge.town_id,
        )
        if frm is not None:
            q = q.where(Charge.paid_at >= frm)
        if to is not None:
            q = q.where(Charge.paid_at < to)
        return list(self.session.scalars(q.order_by(Charge.id)))

    def pending_charges(self, merchant: Merchant) -> list[Charge]:
        return list(
            self.session.scalars(
                select(Charge)
                .where(Charge.merchant_id == merchant.id, Charge.status == PAYING)
                .order_by(Charge.id.desc())
            )
        )

    def balance(self, merchant: Merchant) -> tuple[int, int]:
        """(confirmed balance, available to redeem) of the merchant's points address."""
        town = self.town_of(merchant)
        summary = self.points.summary(town, merchant.address)
        return summary.confirmed, summary.available

    def redeem(
        self, user: User | None, merchant_id: object, amount: object, idempotency_key: object
    ) -> Settlement:
        """Burn `amount` of the merchant's points (RegionPoints.redeem signed by the merchant's
        key, relayed) for yen settlement; the Settlement joins the town's queue once the burn
        is indexed. AuditLog "points.burn". Same key again: the first settlement."""
        merchant = self.require_staff(user, merchant_id)
        assert user is not None  # noqa: S101
        value = parse_amount(amount)
        key = f"redeem:{merchant.id}:{_idempotency_key(idempotency_key)}"
        existing = self.session.scalar(select(Settlement).where(Settlement.idempotency_key == key))
        if existing is not None:
            if int(existing.amount) != value:
                raise IdempotencyKeyReused(
                    N_("This request key was already used for another amount.")
                )
            return existing
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        # One redemption of this shop at a time: the balance read below then includes every
        # redemption committed before (two that together exceed it are not both accepted).
        settlement_state.lock_merchant(self.session, merchant.id)
        _confirmed, available = self.balance(merchant)
        if available < value:
            self.session.rollback()
            raise InsufficientPoints(
                N_("Not enough points: %(available)d available, %(amount)d needed."),
                available=available,
                amount=value,
            )
        town = self.town_of(merchant)
        s = Settlement(
            town_id=town.id,
            merchant_id=merchant.id,
            amount=Decimal(value),
            ref="0x" + secrets.token_hex(32),
            status=REDEEMING,
            idempotency_key=key,
            requested_by=user.id,
        )
        self.session.add(s)
        try:
            self.session.flush()
            tx = self._outbox().enqueue(
                self.session,
                ContractCall(
                    str(town.points_address), "redeem", (value, s.ref), artifact_name="RegionPoints"
                ),
                sender=Sender.user(
                    self._vault().signer(merchant.sealed_key()), town_id=town.id, user_id=user.id
                ),
                key=f"merchants.redeem:{s.id}",
                subject=Subject("settlement", s.id),
                audit=AuditEntry(
                    actor=f"user:{user.id}",
                    action="points.burn",
                    subject_type="settlement",
                    subject_id=str(s.id),
                    amount=value,
                    reason="merchant redemption for yen settlement",
                    details={"merchant_id": merchant.id, "ref": s.ref},
                ),
            )
            s.outbox_tx_id = tx.id
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            found = self.session.scalar(select(Settlement).where(Settlement.idempotency_key == key))
            if found is None:
                raise
            return found
        except Exception:
            self.session.rollback()
            raise
        return s

    def settlements_of(self, merchant: Merchant) -> list[Settlement]:
        rows = list(
            self.session.scalars(
                select(Settlement)
                .where(Settlement.merchant_id == merchant.id)
                .order_by(Settlement.id.desc())
            )
        )
        settlement_state.refresh_failed(self.session, rows)
        return rows

    def settlement_queue(self, user: User | None, town: Town) -> list[Settlement]:
        """The town's settlements (requested first), for town STAFF."""
        require_town_role(user, town.id, STAFF)
        rows = self.session.scalars(
            select(Settlement).where(Settlement.town_id == town.id).order_by(Settlement.id.desc())
        ).all()
        settlement_state.refresh_failed(self.session, rows)
        order = {REQUESTED: 0, APPROVED: 1, REDEEMING: 2, SETTLED: 3}
        return sorted(rows, key=lambda s: order.get(s.status, 3))

    def approve(self, user: User | None, settlement_id: object) -> Settlement:
        """Town STAFF approve a requested settlement (four eyes above the town's amount)."""
        return settlement_state.approve(self.session, user, settlement_id, self._now())

    def settle(
        self, user: User | None, settlement_id: object, bank_reference: object
    ) -> Settlement:
        """Town STAFF mark an approved settlement paid with the bank transfer's reference
        (AuditLog "settlement.pay"), by compare-and-set. The same reference again changes
        nothing; concurrent calls: one wins, the others get 409."""
        s = self.session.get(Settlement, i) if (i := db_id_or_none(settlement_id)) else None
        if s is None:
            raise SettlementNotFound(N_("There is no such settlement."))
        require_town_role(user, s.town_id, STAFF)
        ref = _text(bank_reference, "bank_reference", 120)
        return settlement_state.settle(self.session, user, settlement_id, ref, self._now())

    def can_settle(self, user: User | None, town: Town) -> bool:
        return has_town_role(user, town.id, STAFF)

    # ------------------------------------------------------------------ statement

    def statement_csv(
        self, user: User | None, merchant_id: object, frm: object, to: object
    ) -> tuple[str, str]:
        """(file name, CSV text) of the merchant's sales and settlements (statement.py)."""
        return statement.statement_csv(self, user, merchant_id, frm, to)


def merchant_service() -> MerchantService:
    """A MerchantService for the current app and request."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return MerchantService(
        get_db().session(),
        vault=lambda: get_vault(app),
        outbox=outbox_service,
        secret=purpose_key_hex(str(app.config["SECRET_KEY"]), CUSTOMER_CODE),
        chain_now=chain_clock,
    )
