"""Single-use customer codes (issue 11 §1, docs/adr/0009-money-paths.md).

The customer's phone asks for a code ("P" + 12 digits, shown as a QR, valid CODE_TTL). Only an
HMAC of it is stored, keyed by a key of its own derived from SECRET_KEY. A shop's charge claims
it with ONE conditional UPDATE (`claimed_at IS NULL AND expires_at > now`), which binds it to that
shop, that amount and that charge: a second charge with the same code gets 409, whatever its
request key, on SQLite and PostgreSQL alike (no read-then-write).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.core.errors import N_, Conflict
from backend.merchants import limits
from backend.merchants.errors import CustomerCodeInvalid
from backend.merchants.models import BY_CUSTOMER_CODE, Charge, CustomerCode, Merchant

if TYPE_CHECKING:
    from backend.merchants.charges import MerchantCharges

CODE_TTL = dt.timedelta(minutes=3)
CODE_RE = re.compile(r"P\d{12}")


class CustomerCodeUsed(Conflict):
    code = "customer_code_used"


class CustomerCodes:
    def __init__(self, session: Session, secret: bytes) -> None:
        self.session = session
        # A key of its own, so a leak of another HMAC's output says nothing about these.
        self._key = hmac.new(secret, b"furusato/customer-code/v2", hashlib.sha256).digest()

    def _hash(self, code: str) -> str:
        return hmac.new(self._key, code.encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: int, now: dt.datetime) -> tuple[str, dt.datetime]:
        """A fresh code for the user (commits); returns it with its expiry."""
        code = f"P{secrets.randbelow(10**12):012d}"
        expires = now + CODE_TTL
        self.session.add(
            CustomerCode(
                user_id=user_id, code_hash=self._hash(code), created_at=now, expires_at=expires
            )
        )
        self.session.commit()
        return code, expires

    def holder(self, code: str, now: dt.datetime) -> int | None:
        """The customer (user id) a valid code names: unclaimed and not expired (None
        otherwise). Reading it claims nothing: the code still pays one shop."""
        if not CODE_RE.fullmatch(code):
            return None
        user_id = self.session.scalar(
            select(CustomerCode.user_id).where(
                CustomerCode.code_hash == self._hash(code),
                CustomerCode.claimed_at.is_(None),
                CustomerCode.expires_at > now,
            )
        )
        return None if user_id is None else int(user_id)

    def paid(self, code: str, charge_id: int) -> bool:
        """Whether `code` is the code claimed for charge `charge_id` (the same request again)."""
        if not CODE_RE.fullmatch(code):
            return False
        found = self.session.scalar(
            select(CustomerCode.id).where(
                CustomerCode.code_hash == self._hash(code), CustomerCode.charge_id == charge_id
            )
        )
        return found is not None

    def claim(self, code: str, merchant_id: int, amount: int, now: dt.datetime) -> CustomerCode:
        """Claim `code` for one charge (no commit: the claim stands or falls with the charge).
        CustomerCodeInvalid: no such code or expired. CustomerCodeUsed: already claimed."""
        if not CODE_RE.fullmatch(code):
            raise CustomerCodeInvalid(N_("This customer code is not valid. Ask for a new one."))
        digest = self._hash(code)
        done = self.session.execute(
            update(CustomerCode)
            .where(
                CustomerCode.code_hash == digest,
                CustomerCode.claimed_at.is_(None),
                CustomerCode.expires_at > now,
            )
            .values(claimed_at=now, merchant_id=merchant_id, amount=Decimal(amount))
            .execution_options(synchronize_session=False)
        )
        row = self.session.scalar(select(CustomerCode).where(CustomerCode.code_hash == digest))
        if done.rowcount == 1 and row is not None:  # type: ignore[attr-defined]
            self.session.refresh(row)
            return row
        if row is not None and row.claimed_at is not None:
            raise CustomerCodeUsed(
                N_("This customer code was already used. Ask the customer for a new one.")
            )
        raise CustomerCodeInvalid(N_("This customer code is not valid. Ask for a new one."))


def charge_by_customer_code(
    svc: MerchantCharges, staff: User, merchant: Merchant, value: int, code: str, key: str
) -> Charge:
    """Claim `code` for this shop and amount, count it against the customer's daily limit and
    queue the payment, in one transaction (commits; the caller rolls back on any error)."""
    session = svc.session
    now = svc.now()
    claim = CustomerCodes(session, svc.secret).claim(code, merchant.id, value, now)
    payer = session.get(User, claim.user_id)
    assert payer is not None  # noqa: S101 - a foreign key
    limit = limits.town_limit(session, merchant.town_id, "customer_daily_limit")
    limits.spend(
        session, f"user:{payer.id}:town:{merchant.town_id}", limits.jst_day(now), value, limit
    )
    charge = svc.new_charge(
        merchant, value, key, BY_CUSTOMER_CODE, staff, now=now, payer=payer, helper=staff
    )
    session.flush()
    claim.charge_id = charge.id
    svc.queue_payment(
        charge,
        merchant,
        payer,
        actor=f"user:{staff.id}",
        action="points.assisted_payment",
        details={"helper_user_id": staff.id, "method": BY_CUSTOMER_CODE, "code_id": claim.id},
    )
    session.commit()
    return charge


def charges_of(session: Session, user: User, limit: int = 500) -> list[tuple[Charge, Merchant]]:
    """Every charge taken from `user` (newest first) with its shop, from the moment it is
    taken: a code or card payment shows at once, not only once it is confirmed."""
    rows = session.execute(
        select(Charge, Merchant)
        .join(Merchant, Merchant.id == Charge.merchant_id)
        .where(Charge.payer_user_id == user.id)
        .order_by(Charge.id.desc())
        .limit(limit)
    ).all()
    return [(c, m) for c, m in rows]
