"""A listing's supply, held by orders in SQL (issue 16 §3: a sale rush).

Every order that may still end with a token (pending payment, processing, completed) holds its
quantity of the listing's supply in `nft_listing_stock.reserved`. A new order takes its
quantity with ONE guarded UPDATE (`reserved + q <= supply`) just before its transaction
commits: of many buyers at once exactly the supply's worth succeed and the others are told
"sold out" in the same request, before any transaction is queued. An order that fails, is
declined or refunded gives its quantity back (`set_status`). The row lock lasts from that
UPDATE to the commit (milliseconds), and only buyers of the same listing share it; the stock is
a table of its own so that the indexer's updates of `nft_listings` never hold a buyer up.

The chain still enforces the supply (PrimarySale counts `sold`): a token bought outside the
platform makes a later order fail on chain and give its quantity back, never an oversell.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.core.errors import N_
from backend.core.upsert import ensure_row
from backend.shop.errors import SoldOut, WalletCapExceeded
from backend.shop.models import Listing, ListingStock, Order

# Order states that hold supply: the token is still to be minted or already is.
HOLDING = ("pending_payment", "processing", "completed")


def held(session: Session, listing_id: int, but: int | None = None) -> int:
    """Tokens of the listing that orders hold, counted from the orders themselves (leaving out
    the order `but`, the one being placed)."""
    query = select(func.coalesce(func.sum(Order.quantity), 0)).where(
        Order.listing_id == listing_id, Order.status.in_(HOLDING)
    )
    if but is not None:
        query = query.where(Order.id != but)
    return int(session.scalar(query) or 0)


def _ensure(session: Session, listing_id: int, placing: int) -> None:
    """Create the listing's stock row the first time it is needed, from the orders other than
    `placing` (a new listing, or one of before the stock: nothing else has to create it)."""
    if session.scalar(select(ListingStock.listing_id).where(ListingStock.listing_id == listing_id)):
        return
    values = {"listing_id": listing_id, "reserved": held(session, listing_id, but=placing)}
    ensure_row(session, ListingStock, values, ["listing_id"])


def reserved(session: Session, listing_id: int) -> int:
    """What the listing's orders hold now (read without a lock: for messages and pages)."""
    value = session.scalar(
        select(ListingStock.reserved).where(ListingStock.listing_id == listing_id)
    )
    return held(session, listing_id) if value is None else int(value)


def reserve(session: Session, listing: Listing, order: Order) -> None:
    """Take the new `order`'s quantity (its row flushed in this transaction) of the listing's
    supply: call it last, just before the commit. Raises SoldOut (nothing taken) when fewer are
    left."""
    quantity = order.quantity
    _ensure(session, listing.id, order.id)
    taken = session.execute(
        update(ListingStock)
        .where(
            ListingStock.listing_id == listing.id,
            ListingStock.reserved + quantity <= int(listing.supply),
        )
        .values(reserved=ListingStock.reserved + quantity)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if taken == 1:
        _within_wallet_cap(session, listing, order)
        return
    left = max(0, int(listing.supply) - reserved(session, listing.id))
    if left == 0:
        raise SoldOut(N_("Sold out."), remaining=0)
    raise SoldOut(N_("Only %(remaining)s left."), remaining=left)


def _within_wallet_cap(session: Session, listing: Listing, order: Order) -> None:
    """Raise WalletCapExceeded when the buyer's other orders of the listing and this one pass
    its wallet cap. Read under the stock row's lock just taken: the buyer's orders placed at
    the same moment (ten tabs, ten request keys) have committed by now and are counted, which
    the early check (OrderService.check_supply) cannot see."""
    others = session.scalar(
        select(func.coalesce(func.sum(Order.quantity), 0)).where(
            Order.listing_id == listing.id,
            Order.buyer_address == order.buyer_address,
            Order.status.in_(HOLDING),
            Order.id != order.id,
        )
    )
    left = int(listing.wallet_cap) - int(others or 0)
    if order.quantity > left:
        raise WalletCapExceeded(
            N_("You can buy at most %(cap)s of these; %(left)s more for you."),
            cap=listing.wallet_cap,
            left=max(left, 0),
        )


def remaining(session: Session, listing: Listing) -> int:
    """What is left for new orders (read without a lock)."""
    return max(0, int(listing.supply) - reserved(session, listing.id))


def set_status(session: Session, order: Order, status: str) -> None:
    """Move `order` to `status`, giving its quantity back when it stops holding supply (failed,
    declined, refunded) and taking it again when a failed order turns out minted after all (a
    reorg's replay, a late receipt): the chain sold it, so it counts whatever the limit."""
    before, after = order.status in HOLDING, status in HOLDING
    order.status = status
    if before == after:
        return
    delta = order.quantity if after else -order.quantity
    session.execute(
        update(ListingStock)
        .where(ListingStock.listing_id == order.listing_id)
        .values(reserved=ListingStock.reserved + delta)
        .execution_options(synchronize_session=False)
    )
