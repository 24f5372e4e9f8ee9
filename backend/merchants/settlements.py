"""A merchant's sales, redemption (burning points for yen: a settlement request), the town's
settlement queue (settlement_state.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import secrets
from decimal import Decimal

from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.roles import STAFF, has_town_role, require_town_role
from backend.chain.api import (
    AuditEntry,
    ContractCall,
    Sender,
    Subject,
)
from backend.core.errors import N_
from backend.core.idempotency import first_answer
from backend.core.numbers import db_id_or_none
from backend.merchants import settlement_state
from backend.merchants.errors import (
    IdempotencyKeyReused,
    MerchantNotActive,
    SettlementNotFound,
)
from backend.merchants.models import (
    ACTIVE,
    APPROVED,
    PAID,
    PAYING,
    REDEEMING,
    REQUESTED,
    SETTLED,
    Charge,
    Merchant,
    Settlement,
)
from backend.merchants.registration import (
    MerchantRegistration,
    _idempotency_key,
    _text,
)
from backend.points.errors import InsufficientPoints
from backend.points.models import RECEIVED, PointsEntry
from backend.points.services import parse_amount
from backend.regions.models import Town

# The towns settle a redeemed point as one yen (the bank transfer is the points' amount in yen).
YEN_PER_POINT = 1


class MerchantSettlements(MerchantRegistration):
    """Sales, redemption and settlements."""

    # ------------------------------------------------------------------ sales and redemption

    def sales(
        self,
        user: User | None,
        merchant_id: object,
        frm: dt.datetime | None = None,
        to: dt.datetime | None = None,
    ) -> list[tuple[PointsEntry, Charge | None]]:
        """Confirmed payments received (newest first), with the charge each one paid, if any.
        Who paid is shown as the customer's display name or a masked code (customers_of)."""
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

    def customers_of(self, charges: list[Charge | None]) -> dict[int, str]:
        """Who paid each charge, by charge id, for the shop's sales list: the customer's display
        name, else a masked customer code stable per customer (never an address or e-mail)."""
        payers = {c.id: c.payer_user_id for c in charges if c is not None and c.payer_user_id}
        if not payers:
            return {}
        users = {
            u.id: u
            for u in self.session.scalars(select(User).where(User.id.in_(set(payers.values()))))
        }
        return {
            charge_id: (users[uid].display_name.strip() or self._masked_customer(uid))
            for charge_id, uid in payers.items()
            if uid in users
        }

    def _masked_customer(self, user_id: int) -> str:
        """'••' and 4 characters of a keyed hash of the customer: the same customer reads the
        same at the till, and nothing about them can be read from it."""
        digest = hmac.new(self._secret, f"customer-label:{user_id}".encode(), "sha256").digest()
        return "••" + base64.b32encode(digest).decode()[:4]

    def shops_by_tx(self, tx_ids: list[int | None]) -> dict[int, Merchant]:
        """The shop each of these outbox transactions paid (a charge's payment), by tx id: a
        customer's points history names the shop of each payment."""
        ids = [i for i in tx_ids if i is not None]
        if not ids:
            return {}
        rows = self.session.execute(
            select(Charge.outbox_tx_id, Merchant)
            .join(Merchant, Merchant.id == Charge.merchant_id)
            .where(Charge.outbox_tx_id.in_(ids))
        ).all()
        return {int(tx_id): m for tx_id, m in rows if tx_id is not None}

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

    def redeem_quote(
        self, user: User | None, merchant_id: object, amount: object
    ) -> tuple[int, int]:
        """(points, yen) a redemption of `amount` would burn and pay, checked as `redeem` checks
        it (staff, a whole positive amount, within what is available) and nothing written: the
        shop confirms this before sending."""
        merchant = self.require_staff(user, merchant_id)
        value = parse_amount(amount)
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))
        _confirmed, available = self.balance(merchant)
        if available < value:
            raise InsufficientPoints(
                N_("Not enough points: %(available)d available, %(amount)d needed."),
                available=available,
                amount=value,
            )
        return value, value * YEN_PER_POINT

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
            return self._same_settlement(existing, value)
        if merchant.status != ACTIVE:
            raise MerchantNotActive(N_("This shop is not registered on the points network yet."))

        def twin() -> Settlement | None:
            found = self.session.scalar(select(Settlement).where(Settlement.idempotency_key == key))
            return self._same_settlement(found, value) if found is not None else None

        # A double submit: the twin with this key may commit after the look-up above, while this
        # request waits for the shop's lock, and spend the balance; the refusal that follows
        # ("not enough points") gives way to the twin's settlement, as a lost race on the key's
        # UNIQUE constraint does.
        try:
            return first_answer(
                self.session,
                lambda: self._burn(user, merchant, value, key),
                twin,
                also=(InsufficientPoints,),
            )
        except Exception:
            self.session.rollback()
            raise

    @staticmethod
    def _same_settlement(existing: Settlement, value: int) -> Settlement:
        if int(existing.amount) != value:
            raise IdempotencyKeyReused(N_("This request key was already used for another amount."))
        return existing

    def _burn(self, user: User, merchant: Merchant, value: int, key: str) -> Settlement:
        """The settlement and its burn through the outbox, under the shop's lock (commits)."""
        # One redemption of this shop at a time: the balance read below then includes every
        # redemption committed before (two that together exceed it are not both accepted).
        settlement_state.lock_merchant(self.session, merchant.id)
        _confirmed, available = self.balance(merchant)
        if available < value:
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
