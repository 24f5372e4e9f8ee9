"""A service's budgets: the points it issued per JST day and month are counters
(`service_budget_usage`, UNIQUE per service, period and start), raised by one guarded UPDATE
each in the issuing transaction: `used + n <= budget` is checked by the database on the row it
locks (PostgreSQL re-reads the row after waiting for a concurrent writer; SQLite holds one
write lock), so ten requests at once can never pass a budget together. The day's row is
always taken before the month's (one lock order: no deadlock).

An issuance whose chunk failed on chain issued nothing, so its points go back to the day and
month it was counted against (`give_back`, the periods of the issuance's `created_at`, which is
the moment `reserve` ran); if the chain then confirms it after all, it is counted again
(`count_again`, without the budget's guard: the points went out). events.py calls them once
per issuance and change, behind its guarded UPDATE."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from backend.core.errors import N_
from backend.core.upsert import ensure_row
from backend.integrations.errors import BudgetExceeded
from backend.integrations.models import DAY, MONTH, ServiceAccount, ServiceBudgetUsage
from backend.points.town_settings import jst_day


@dataclass(frozen=True)
class Usage:
    day_used: int
    month_used: int


def periods(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The first day of the JST day and month of `now`."""
    day = jst_day(now)
    return day, day.replace(day=1)


def _ensure(session: Session, service_id: int, period: str, start: dt.date) -> None:
    values = {"service_account_id": service_id, "period": period, "start": start, "used": 0}
    keys = ["service_account_id", "period", "start"]
    ensure_row(session, ServiceBudgetUsage, values, keys)


def usage(session: Session, account: ServiceAccount, now: dt.datetime) -> Usage:
    day, month = periods(now)
    rows = dict(
        session.execute(
            select(ServiceBudgetUsage.period, ServiceBudgetUsage.used).where(
                ServiceBudgetUsage.service_account_id == account.id,
                ((ServiceBudgetUsage.period == DAY) & (ServiceBudgetUsage.start == day))
                | ((ServiceBudgetUsage.period == MONTH) & (ServiceBudgetUsage.start == month)),
            )
        ).all()
    )
    return Usage(int(rows.get(DAY, 0)), int(rows.get(MONTH, 0)))


def reserve(session: Session, account: ServiceAccount, amount: int, now: dt.datetime) -> None:
    """Add `amount` to the service's day and month (caller's transaction); BudgetExceeded when
    either budget would be passed (the caller rolls back: nothing is written)."""
    day, month = periods(now)
    for period, start, budget in (
        (DAY, day, account.daily_budget),
        (MONTH, month, account.monthly_budget),
    ):
        _ensure(session, account.id, period, start)
        stmt = (
            update(ServiceBudgetUsage)
            .where(
                ServiceBudgetUsage.service_account_id == account.id,
                ServiceBudgetUsage.period == period,
                ServiceBudgetUsage.start == start,
            )
            .values(used=ServiceBudgetUsage.used + amount)
            .execution_options(synchronize_session=False)
        )
        if budget is not None:
            stmt = stmt.where(ServiceBudgetUsage.used + amount <= budget)
        if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
            used = session.scalar(
                select(ServiceBudgetUsage.used).where(
                    ServiceBudgetUsage.service_account_id == account.id,
                    ServiceBudgetUsage.period == period,
                    ServiceBudgetUsage.start == start,
                )
            ) or Decimal(0)
            left = max(int(budget or 0) - int(used), 0)
            message = (
                N_(
                    "This would pass the service's daily budget of %(budget)d points "
                    "(%(left)d left today)."
                )
                if period == DAY
                else N_(
                    "This would pass the service's monthly budget of %(budget)d points "
                    "(%(left)d left this month)."
                )
            )
            raise BudgetExceeded(
                message, budget=int(budget or 0), left=left, asked=amount, period=period
            )


def give_back(session: Session, service_id: int, amount: int, at: dt.datetime) -> None:
    """Take `amount` off the day and month of `at` (caller's transaction). Never below 0: a
    counter lower than what it gives back (edited by hand) stops at 0 rather than failing the
    settling transaction on the CHECK."""
    _move(session, service_id, -amount, at)


def count_again(session: Session, service_id: int, amount: int, at: dt.datetime) -> None:
    """Add `amount` back to the day and month of `at`, whatever the budgets (the points were
    issued after all, so the counters must say so even if that passes a budget)."""
    _move(session, service_id, amount, at)


def _move(session: Session, service_id: int, delta: int, at: dt.datetime) -> None:
    day, month = periods(at)
    for period, start in ((DAY, day), (MONTH, month)):  # the reservation's lock order
        _ensure(session, service_id, period, start)
        new = ServiceBudgetUsage.used + delta
        session.execute(
            update(ServiceBudgetUsage)
            .where(
                ServiceBudgetUsage.service_account_id == service_id,
                ServiceBudgetUsage.period == period,
                ServiceBudgetUsage.start == start,
            )
            .values(used=case((new < 0, 0), else_=new))
            .execution_options(synchronize_session=False)
        )
