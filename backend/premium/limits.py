"""The monthly yen limits of a town's premium sale, per person and for the whole town.

Counters (`premium_totals`, UNIQUE per town, JST month and user; user TOWN is the town) are
raised with a guarded UPDATE (`total + yen <= limit`) in the caller's transaction, the town's
row first and then the person's (one lock order): concurrent checkouts can never pass a limit
together (PostgreSQL's row lock, SQLite's database write lock), and a refused one has written
nothing once the caller rolls back. The rows are created first with INSERT .. ON CONFLICT DO
NOTHING so that two first checkouts of a month do not collide on the UNIQUE key.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.core.errors import N_
from backend.core.upsert import ensure_row
from backend.premium.errors import LimitReached
from backend.premium.models import TOWN, PremiumOffer, PremiumTotal

JST = dt.timezone(dt.timedelta(hours=9), "JST")


def jst_month(at: dt.datetime) -> str:
    """The JST calendar month of `at`, e.g. "2026-12" (the limits' period)."""
    return at.astimezone(JST).strftime("%Y-%m")


def _ensure(session: Session, town_id: int, month: str, user_id: int) -> None:
    values = {"town_id": town_id, "month": month, "user_id": user_id, "total_yen": 0}
    keys = ["town_id", "month", "user_id"]
    ensure_row(session, PremiumTotal, values, keys)


def _add(
    session: Session, town_id: int, month: str, user_id: int, yen: int, cap: int | None
) -> bool:
    stmt = (
        update(PremiumTotal)
        .where(
            PremiumTotal.town_id == town_id,
            PremiumTotal.month == month,
            PremiumTotal.user_id == user_id,
        )
        .values(total_yen=PremiumTotal.total_yen + yen)
        .execution_options(synchronize_session=False)
    )
    if cap is not None:
        stmt = stmt.where(PremiumTotal.total_yen + yen <= cap)
    return session.execute(stmt).rowcount == 1  # type: ignore[attr-defined,no-any-return]


def reserve(session: Session, offer: PremiumOffer, user_id: int, yen: int, month: str) -> None:
    """Add `yen` to the month's counters of the town and the person; LimitReached (the caller
    rolls back) when the offer's town or person limit would be passed."""
    for uid, cap in ((TOWN, offer.town_month_yen), (user_id, offer.person_month_yen)):
        _ensure(session, offer.town_id, month, uid)
        if not _add(session, offer.town_id, month, uid, yen, cap):
            if uid == TOWN:
                raise LimitReached(
                    N_("This month's points for sale are sold out. Please try next month."),
                    field="yen",
                )
            raise LimitReached(
                N_(
                    "This would pass your limit of %(limit)s yen a month: you can buy "
                    "%(left)s yen more this month."
                ),
                field="yen",
                limit=f"{int(cap or 0):,}",
                left=f"{max(int(cap or 0) - used(session, offer.town_id, month, user_id), 0):,}",
            )


def release(session: Session, town_id: int, user_id: int, yen: int, month: str) -> None:
    """Give back a purchase's reservation (it ended unpaid or was refunded)."""
    for uid in (TOWN, user_id):
        _add(session, town_id, month, uid, -yen, None)


def used(session: Session, town_id: int, month: str, user_id: int) -> int:
    """Yen counted against the person's (or, with TOWN, the town's) limit this month."""
    total = session.scalar(
        select(PremiumTotal.total_yen).where(
            PremiumTotal.town_id == town_id,
            PremiumTotal.month == month,
            PremiumTotal.user_id == user_id,
        )
    )
    return int(total or 0)
