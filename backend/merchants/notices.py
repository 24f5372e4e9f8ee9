"""What merchants tells the notifications domain: a charge the chain has just paid, with what
its payer reads about it (backend/notifications/handlers.py asks, in the indexer's transaction,
after merchants' own handlers marked it paid)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.merchants.models import PAID, Charge, Merchant
from backend.regions.models import Town


@dataclass(frozen=True)
class PaidCharge:
    charge_id: int
    payer_user_id: int
    amount: int
    shop_ja: str
    shop_en: str
    town_ja: str
    town_en: str


def paid_charge(session: Session, charge_id: int, tx_hash: str) -> PaidCharge | None:
    """The charge `charge_id` if the transaction `tx_hash` paid it and a person paid it (None for
    a charge that is not paid by that transaction, or that has no payer)."""
    row = session.execute(
        select(Charge, Merchant, Town)
        .join(Merchant, Merchant.id == Charge.merchant_id)
        .join(Town, Town.id == Merchant.town_id)
        .where(Charge.id == charge_id, Charge.status == PAID, Charge.tx_hash == tx_hash)
    ).first()
    if row is None:
        return None
    charge, shop, town = row
    if charge.payer_user_id is None:
        return None
    return PaidCharge(
        charge.id,
        charge.payer_user_id,
        int(charge.amount),
        shop.name_ja,
        shop.name_en,
        town.name_ja,
        town.name_en,
    )
