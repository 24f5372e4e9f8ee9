"""Who a treasury payout goes to, in words (issue 15 §5): one of the town's shops by its name,
a person with an account on the platform (not named: the proposal's text may name them), or an
account outside the platform. Pages show these words; the address itself goes under "details".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from backend.accounts.services import owners_of_addresses
from backend.chain.api import checksum_address
from backend.merchants.models import Merchant
from backend.merchants.services import MerchantService
from backend.regions.models import Town

SHOP, PERSON, OUTSIDE = "shop", "person", "outside"


@dataclass(frozen=True)
class Recipient:
    kind: str  # SHOP | PERSON | OUTSIDE
    address: str
    shop: Merchant | None = None

    def name(self, locale: str) -> str | None:
        """The shop's name; None for a person or an outside account (the page words them)."""
        return self.shop.name(locale) if self.shop is not None else None


def describe(
    session: Session, merchants: MerchantService, town: Town, addresses: Iterable[str]
) -> dict[str, Recipient]:
    """Each of `addresses` (as given) described: the town's shop, a person, or outside."""
    given = [a for a in addresses if a]
    shops = {m.address.lower(): m for m in merchants.merchants_in(town)}
    people = owners_of_addresses(session, given)
    out: dict[str, Recipient] = {}
    for a in given:
        shop = shops.get(a.lower())
        if shop is not None:
            out[a] = Recipient(SHOP, a, shop)
        elif (checksum_address(a) or "") in people:
            out[a] = Recipient(PERSON, a)
        else:
            out[a] = Recipient(OUTSIDE, a)
    return out
