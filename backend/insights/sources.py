"""Where every KPI and every exported row comes from: one SELECT per kind of money or points
event, read from the domains' own tables (never the node), each with the same labelled columns

    at, kind, user_id, programme_id, points, yen, shop_id, category, tokens

so the page's totals (kpis.py, which aggregates these selects) and the CSV's rows (export.py,
which lists them) cannot disagree. A row belongs to a town by the town the domain recorded it
for (the shop's town for a payment, the listing's town for an NFT order) and to a month by the
JST moment its domain marks it done:

- points_granted: a `points_grants` row the chain confirmed (welcome points, event prizes),
  at `confirmed_at`;
- points_issued_staff / points_issued_service: an `issuance_rows` row the chain confirmed, at
  its chunk's `confirmed_at`; "service" for batches of the town's services (/api/v1);
- points_bought: a premium purchase whose points were issued, at `issued_at` (yen = paid);
- shop_payment: a shop's charge paid, at `paid_at` (whichever town's points paid it);
- redemption: a shop's redemption burnt on chain (requested, approved or settled), at
  `redeemed_at`; settlement: one the town settled in yen, at `settled_at` (no person: shops);
- nft_order: a fan-NFT order completed (minted), at the order's `created_at`; yen for card and
  stablecoin listings, points for points listings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal, null, select
from sqlalchemy.orm import QueryableAttribute

from backend.insights.period import Period
from backend.issuing.models import ROW_CONFIRMED, IssuanceBatch, IssuanceChunk, IssuanceRow
from backend.merchants.models import APPROVED, PAID, REQUESTED, SETTLED, Charge, Settlement
from backend.merchants.settlements import YEN_PER_POINT
from backend.points.models import GRANT_CONFIRMED, PointsGrant
from backend.premium.models import ISSUED as POINTS_DELIVERED
from backend.premium.models import PremiumPurchase
from backend.shop.models import Collection, Listing, Order

GRANTED = "points_granted"
ISSUED_STAFF = "points_issued_staff"
ISSUED_SERVICE = "points_issued_service"
BOUGHT = "points_bought"
SHOP_PAYMENT = "shop_payment"
REDEMPTION = "redemption"
SETTLEMENT = "settlement"
NFT_ORDER = "nft_order"
Column = ColumnElement[Any] | QueryableAttribute[Any]
SERVICE_SOURCES = ("api", "service")  # IssuanceBatch.source of the town's services
REDEEMED_STATES = (REQUESTED, APPROVED, SETTLED)
YEN_KINDS = ("card", "stablecoin")  # listings priced in yen (Order.amount is whole yen)


def within(column: Column, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _row(at: Column, kind: Column | str, **cols: Column) -> list[Any]:
    names = ("user_id", "programme_id", "points", "yen", "shop_id", "category", "tokens")
    return [
        at.label("at"),
        (literal(kind) if isinstance(kind, str) else kind).label("kind"),
        *[cols.get(n, null()).label(n) for n in names],
    ]


def grants(town_id: int, period: Period) -> Select:
    at = func.coalesce(PointsGrant.confirmed_at, PointsGrant.created_at)
    return select(
        *_row(
            at,
            GRANTED,
            user_id=PointsGrant.user_id,
            programme_id=PointsGrant.programme_id,
            points=PointsGrant.amount,
        )
    ).where(
        PointsGrant.town_id == town_id,
        PointsGrant.status == GRANT_CONFIRMED,
        within(at, period),
    )


def issued(town_id: int, period: Period) -> Select:
    kind = case(
        (IssuanceBatch.source.in_(SERVICE_SOURCES), literal(ISSUED_SERVICE)),
        else_=literal(ISSUED_STAFF),
    )
    return (
        select(
            *_row(
                IssuanceChunk.confirmed_at,
                kind,
                user_id=IssuanceRow.user_id,
                programme_id=IssuanceBatch.programme_id,
                points=IssuanceRow.amount,
            )
        )
        .join(IssuanceBatch, IssuanceBatch.id == IssuanceRow.batch_id)
        .join(IssuanceChunk, IssuanceChunk.id == IssuanceRow.chunk_id)
        .where(
            IssuanceBatch.town_id == town_id,
            IssuanceRow.status == ROW_CONFIRMED,
            within(IssuanceChunk.confirmed_at, period),
        )
    )


def bought(town_id: int, period: Period) -> Select:
    return select(
        *_row(
            PremiumPurchase.issued_at,
            BOUGHT,
            user_id=PremiumPurchase.user_id,
            programme_id=PremiumPurchase.programme_id,
            points=PremiumPurchase.points,
            yen=PremiumPurchase.yen,
        )
    ).where(
        PremiumPurchase.town_id == town_id,
        PremiumPurchase.status == POINTS_DELIVERED,
        within(PremiumPurchase.issued_at, period),
    )


def payments(town_id: int, period: Period) -> Select:
    return select(
        *_row(
            Charge.paid_at,
            SHOP_PAYMENT,
            user_id=Charge.payer_user_id,
            points=Charge.amount,
            shop_id=Charge.merchant_id,
        )
    ).where(Charge.town_id == town_id, Charge.status == PAID, within(Charge.paid_at, period))


def redemptions(town_id: int, period: Period) -> Select:
    return select(
        *_row(
            Settlement.redeemed_at,
            REDEMPTION,
            points=Settlement.amount,
            shop_id=Settlement.merchant_id,
        )
    ).where(
        Settlement.town_id == town_id,
        Settlement.status.in_(REDEEMED_STATES),
        within(Settlement.redeemed_at, period),
    )


def settlements(town_id: int, period: Period) -> Select:
    return select(
        *_row(
            Settlement.settled_at,
            SETTLEMENT,
            yen=Settlement.amount * YEN_PER_POINT,
            shop_id=Settlement.merchant_id,
        )
    ).where(
        Settlement.town_id == town_id,
        Settlement.status == SETTLED,
        within(Settlement.settled_at, period),
    )


def nft_orders(town_id: int, period: Period) -> Select:
    in_yen = Order.payment_kind.in_(YEN_KINDS)
    return (
        select(
            *_row(
                Order.created_at,
                NFT_ORDER,
                user_id=Order.user_id,
                points=case((Order.payment_kind == "points", Order.amount)),
                yen=case((in_yen, Order.amount)),
                category=Collection.category,
                tokens=Order.quantity,
            )
        )
        .join(Listing, Listing.id == Order.listing_id)
        .join(Collection, Collection.id == Listing.collection_id)
        .where(
            Listing.town_id == town_id,
            Order.status == "completed",
            within(Order.created_at, period),
        )
    )


# Every kind of money or points event, in the order the CSV lists kinds.
SOURCES: tuple[Callable[[int, Period], Select], ...] = (
    grants,
    issued,
    bought,
    payments,
    redemptions,
    settlements,
    nft_orders,
)
# The kinds whose rows name a person (redemptions and settlements are the shops').
WITH_PERSON: tuple[Callable[[int, Period], Select], ...] = (
    grants,
    issued,
    bought,
    payments,
    nft_orders,
)
