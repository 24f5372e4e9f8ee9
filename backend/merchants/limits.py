"""A town's money rules (daily limits per customer and per printed card, the four-eyes amounts
of settlements and of points issued by staff)
and the daily spend counters that enforce the limits.

A counter is raised by ONE conditional UPDATE (`amount + v <= limit`), so two charges at the
same moment cannot both pass a limit that only one fits: PostgreSQL re-checks the WHERE after
the row lock, SQLite holds its single write lock. A read-then-write would let both through.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.core.db import utcnow
from backend.core.errors import N_, AppError, InvalidInput
from backend.core.models import AuditLog
from backend.core.upsert import ensure_row
from backend.merchants.models import SpendCounter, TownMoneySettings
from backend.points.services import JST

# Platform defaults while a town has set nothing (points; 1 point = 1 yen).
DEFAULT_CUSTOMER_DAILY_LIMIT = 30_000
DEFAULT_CARD_DAILY_LIMIT = 10_000
DEFAULT_FOUR_EYES_AMOUNT = 100_000
# Points issued by staff in one batch above this need a second member of staff (issuing).
DEFAULT_ISSUE_FOUR_EYES_AMOUNT = 100_000
MAX_SETTING = 10**9
LIMIT_FIELDS = (
    "customer_daily_limit",
    "card_daily_limit",
    "four_eyes_amount",
    "issue_four_eyes_amount",
)
_DEFAULTS = {
    "customer_daily_limit": DEFAULT_CUSTOMER_DAILY_LIMIT,
    "card_daily_limit": DEFAULT_CARD_DAILY_LIMIT,
    "four_eyes_amount": DEFAULT_FOUR_EYES_AMOUNT,
    "issue_four_eyes_amount": DEFAULT_ISSUE_FOUR_EYES_AMOUNT,
}


class DailyLimitReached(AppError):
    status = 409
    code = "daily_limit_reached"


def settings_row(session: Session, town_id: int) -> TownMoneySettings | None:
    return session.get(TownMoneySettings, town_id)


def town_limit(session: Session, town_id: int, field: str) -> int:
    row = settings_row(session, town_id)
    value = getattr(row, field) if row is not None else None
    return int(value) if value is not None else _DEFAULTS[field]


def town_limits(session: Session, town_id: int) -> dict[str, int]:
    return {f: town_limit(session, town_id, f) for f in LIMIT_FIELDS}


def set_town_limits(session: Session, town_id: int, actor_id: int, data: dict[str, object]) -> None:
    """Town STAFF (checked by the caller) set any of the limits; AuditLog "town.money_settings".
    Bad values change nothing (InvalidInput). The caller commits."""
    values: dict[str, int] = {}
    for field in LIMIT_FIELDS:
        if field not in data:
            continue
        v = data[field]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SETTING:
            raise InvalidInput(
                N_("%(field)s must be a whole number from 1 to %(max)d."),
                field=field,
                max=MAX_SETTING,
            )
        values[field] = v
    if not values:
        raise InvalidInput(N_("Nothing to change."), field="customer_daily_limit")
    row = settings_row(session, town_id)
    if row is None:
        row = TownMoneySettings(town_id=town_id)
        session.add(row)
    for field, v in values.items():
        setattr(row, field, Decimal(v))
    row.updated_by = actor_id
    row.updated_at = utcnow()
    session.add(
        AuditLog(
            actor=f"user:{actor_id}",
            action="town.money_settings",
            subject_type="town",
            subject_id=str(town_id),
            reason="money limits set by town staff",
            details=values,
        )
    )


def jst_day(now: dt.datetime) -> dt.date:
    return now.astimezone(JST).date()


def spend(session: Session, subject: str, day: dt.date, amount: int, limit: int) -> None:
    """Add `amount` to today's counter of `subject` if it stays within `limit`, else raise
    DailyLimitReached. No commit: the caller's transaction keeps or drops it with the charge."""
    if amount > limit:
        raise DailyLimitReached(
            N_("This is over the daily limit of %(limit)d points set by the town."), limit=limit
        )
    ensure_row(session, SpendCounter, {"subject": subject, "day": day, "amount": 0},
               ["subject", "day"])  # fmt: skip
    done = session.execute(
        update(SpendCounter)
        .where(
            SpendCounter.subject == subject,
            SpendCounter.day == day,
            SpendCounter.amount + amount <= limit,
        )
        .values(amount=SpendCounter.amount + amount)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        spent = session.scalar(
            select(SpendCounter.amount).where(
                SpendCounter.subject == subject, SpendCounter.day == day
            )
        )
        raise DailyLimitReached(
            N_(
                "This is over the daily limit of %(limit)d points set by the town "
                "(%(left)d points left today)."
            ),
            limit=limit,
            left=max(0, limit - int(spent or 0)),
        )


def spent(session: Session, subject: str, day: dt.date) -> int:
    """What `subject`'s counter holds for `day` (0 when nothing was spent)."""
    amount = session.scalar(
        select(SpendCounter.amount).where(SpendCounter.subject == subject, SpendCounter.day == day)
    )
    return int(amount or 0)
