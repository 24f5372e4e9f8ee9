"""The merchants' sealed keys as master-key rotation sees them (backend.chain.custody)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.chain.keys import SealedKey
from backend.merchants.models import Merchant


class MerchantKeyStore:
    name = "merchants.merchants"

    def __init__(self, session: Session) -> None:
        self.session = session

    def pending(self, active_key_id: str, after: str | None, limit: int) -> Sequence[SealedKey]:
        q = select(Merchant).where(Merchant.master_key_id != active_key_id)
        if after is not None:
            q = q.where(Merchant.address > after)
        return [
            m.sealed_key() for m in self.session.scalars(q.order_by(Merchant.address).limit(limit))
        ]

    def replace(self, old: SealedKey, new: SealedKey) -> bool:
        done = self.session.execute(
            update(Merchant)
            .where(
                Merchant.address == old.address,
                Merchant.master_key_id == old.master_key_id,
                Merchant.wrapped_data_key == old.wrapped_data_key,
            )
            .values(wrapped_data_key=new.wrapped_data_key, master_key_id=new.master_key_id)
        )
        return done.rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def commit(self) -> None:
        self.session.commit()

    def count_pending(self, active_key_id: str) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Merchant)
                .where(Merchant.master_key_id != active_key_id)
            )
            or 0
        )
