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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.core.errors import N_, Conflict
from backend.merchants.errors import CustomerCodeInvalid
from backend.merchants.models import CustomerCode

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
