"""Merchants' registration and staff: town staff register a merchant (its account on chain
through the outbox) and manage who works for it; the look-ups and rights every merchant
service uses. `MerchantRegistration` holds the session and collaborators the merchant
services share (services.py puts them together).

A shop is "registering" until MerchantAdded is indexed. Its addMerchant call may end failed
(its estimate reverted: never sent), reverted or cancelled; none of them is mined afterwards,
short of a reorg (handlers.py then makes the shop active whatever its state). Before, such a
shop stayed "registering" for ever under a fixed outbox key, so nobody could register it again.

- registering -> failed (`fail_lost_registrations`): ONE conditional UPDATE on the shop's
  status and the failed call's id, so followers at once (the beat task
  `merchants.fail_lost_registrations`, the staff's list and its JSON) change it once and write
  one audit row "merchant.register_failed".
- failed -> registering (`MerchantRegistration.retry_registration`, the shops page): town
  staff register it again, one conditional UPDATE deciding between concurrent retries, under
  a new outbox key per attempt (`merchants.add:<id>:<n>`; the first is `merchants.add:<id>`).
  Under that row lock every earlier addMerchant of the shop must have ended failed: one the
  chain may still mine is never followed by a second.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import CUSTODIAL, Address, User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import (
    AuditEntry,
    ContractCall,
    KeyVault,
    OutboxService,
    Sender,
    Subject,
)
from backend.core.db import utcnow
from backend.core.errors import N_, Conflict, Forbidden, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.merchants.errors import (
    ChargeNotPayable,
    MerchantNotActive,
    MerchantNotFound,
    UnconfirmedAccount,
)
from backend.merchants.models import (
    REGISTERING,
    REGISTRATION_FAILED,
    Merchant,
    MerchantStaff,
)
from backend.partners.services import PartnerService
from backend.points.services import PointsService
from backend.regions.models import Town

_KEY_RE = re.compile(r"[A-Za-z0-9._:-]{6,100}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
FAILED_TX = chain.FAILED_CALL_STATES
SUBJECT = "merchant"  # the outbox subject of a shop's addMerchant calls


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


def fail_lost_registrations(session: Session, *where: Any) -> int:
    """Mark the registering shops (those matching `where`, e.g. one town's) whose addMerchant
    call failed on chain "failed", one audit row each (chain.api follow_failed_calls: once
    whoever follows). Returns how many this call changed."""

    def moved(m: Merchant, tx_id: int, tx: chain.OutboxState) -> None:
        session.add(
            AuditLog(
                actor="system:outbox",
                action="merchant.register_failed",
                subject_type="merchant",
                subject_id=str(m.id),
                reason="the shop's registration failed on chain: it cannot take payments",
                details={
                    "town_id": m.town_id,
                    "address": m.address,
                    "outbox_tx_id": tx_id,
                    "tx_state": tx.state,
                    "error": tx.error,
                },
                town_id=m.town_id,
            )
        )

    return chain.follow_failed_calls(
        session,
        Merchant,
        status=Merchant.status,
        waiting=REGISTERING,
        call=Merchant.outbox_tx_id,
        values={"status": REGISTRATION_FAILED},
        moved=moved,
        where=where,
    )


def registration_failures(session: Session, rows: list[Merchant]) -> dict[int, str]:
    """Why the last addMerchant of each failed shop failed (the outbox's error, else its
    state), by merchant id."""
    calls = {
        int(m.outbox_tx_id): m.id
        for m in rows
        if m.status == REGISTRATION_FAILED and m.outbox_tx_id
    }
    found = chain.outbox_states(session, calls, only=FAILED_TX)
    return {calls[i]: (s.error or s.state) for i, s in found.items()}


class MerchantRegistration:
    """Registration, staff and look-ups over one DB session. `vault` and `outbox` are callables
    (built on first use); `secret` keys the customers' rotating codes."""

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

    def registration_failures(self, rows: list[Merchant]) -> dict[int, str]:
        """Why each failed shop's last registration failed, by merchant id (for staff)."""
        return registration_failures(self.session, rows)

    def town_merchants(self, user: User | None, town: Town) -> list[Merchant]:
        """The town's shops, for town STAFF; a shop whose registration failed on chain shows
        "failed" (recorded here if no follower has yet)."""
        require_town_role(user, town.id, STAFF)
        fail_lost_registrations(self.session, Merchant.town_id == town.id)
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
            m.outbox_tx_id = self._queue_add(m, town, actor, attempt=1)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return m

    def _queue_add(self, m: Merchant, town: Town, actor: User, *, attempt: int) -> int:
        """Queue the shop's addMerchant (attempt 1 under the shop's first key, each retry
        under a key of its own) with its audit row; the outbox row's id."""
        key = f"merchants.add:{m.id}" + (f":{attempt}" if attempt > 1 else "")
        details: dict[str, Any] = {"address": m.address, "town_id": town.id}
        if attempt > 1:
            details["attempt"] = attempt
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                str(town.points_address), "addMerchant", (m.address,), artifact_name="RegionPoints"
            ),
            sender=Sender.role("merchant_admin", town_id=town.id),
            key=key,
            subject=Subject(SUBJECT, m.id),
            audit=AuditEntry(
                actor=f"user:{actor.id}",
                action="merchant.register",
                subject_type="merchant",
                subject_id=str(m.id),
                reason="merchant registered by town staff"
                if attempt == 1
                else "merchant registered again by town staff after its registration failed",
                details=details,
            ),
        )
        return int(tx.id)

    def retry_registration(
        self, actor: User | None, town: Town, merchant_id: object
    ) -> tuple[Merchant, bool]:
        """Town STAFF register again a shop of theirs whose registration failed on chain:
        (the shop, whether this call queued it). A shop that is not failed (registering,
        active, or already sent again by someone else) is returned unchanged. MerchantNotFound
        for another town's shop or a bad id; MerchantNotActive when the town has no points;
        Conflict (409) while an earlier call may still be mined. Nothing is written on a
        refusal."""
        actor = require_town_role(actor, town.id, STAFF)
        m = self.shop_of_town(town, merchant_id)
        fail_lost_registrations(self.session, Merchant.id == m.id)
        self.session.refresh(m)
        if m.status != REGISTRATION_FAILED:
            return m, False
        if not town.points_address:
            raise MerchantNotActive(N_("This town has no points yet."))
        failed_tx = m.outbox_tx_id
        try:
            done = self.session.execute(
                update(Merchant)
                .where(
                    Merchant.id == m.id,
                    Merchant.status == REGISTRATION_FAILED,
                    Merchant.outbox_tx_id == failed_tx,
                )
                .values(status=REGISTERING)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                self.session.rollback()  # another retry won: its call is the one
                self.session.refresh(m)
                return m, False
            # The shop's row is ours until commit. An earlier call the chain may still mine (a
            # reorg put it back on its way) or did mine must not be followed by another.
            calls = [
                c
                for c in chain.calls_of_subject(self.session, SUBJECT, m.id)
                if c.function == "addMerchant"
            ]
            if any(c.state not in FAILED_TX for c in calls):
                raise Conflict(
                    N_(
                        "An earlier registration of this shop may still go through: wait until "
                        "the page shows it failed or active."
                    ),
                    code="registration_on_its_way",
                )
            tx_id = self._queue_add(m, town, actor, attempt=len(calls) + 1)
            self.session.execute(
                update(Merchant)
                .where(Merchant.id == m.id)
                .values(outbox_tx_id=tx_id)
                .execution_options(synchronize_session=False)
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        self.session.refresh(m)
        return m, True

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
        """Town STAFF make the account with `email` staff of one of the town's shops; not an
        account whose address nobody confirmed (UnconfirmedAccount): anyone can sign up with
        an address before its owner does, and shop staff take the shop's payments."""
        merchant = self.merchant(merchant_id)
        require_town_role(actor, merchant.town_id, STAFF)
        user = self.user_by_email(email)
        if user.email_verified_at is None:
            raise UnconfirmedAccount(
                N_(
                    "The account with this email address has not confirmed it yet. Ask them to"
                    " follow the link in the confirmation mail (or reset their password), then"
                    " add them again."
                ),
                field="email",
            )
        return self.add_staff(actor, merchant, user)

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
