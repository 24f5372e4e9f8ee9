"""The period a KPI report covers: one JST month (YYYY-MM, Japan time, the calendar of
backend/partners/months.py), [first instant, first instant of the next month)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from backend.core.errors import N_, InvalidInput
from backend.partners.months import JST, month_end, month_of, next_month, parse_month

# Months a report may name: nothing the platform holds is older, and 9999-12 has no next month.
FIRST_MONTH, LAST_MONTH = "2000-01", "9998-12"


@dataclass(frozen=True)
class Period:
    month: str  # "2026-04"
    start: dt.datetime  # 00:00 JST of the month's first day
    end: dt.datetime  # 00:00 JST of the next month's first day (excluded)

    @property
    def previous(self) -> str | None:
        year, mon = (int(x) for x in self.month.split("-"))
        before = f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"
        return before if before >= FIRST_MONTH else None

    @property
    def following(self) -> str | None:
        after = next_month(self.month)
        return after if after <= LAST_MONTH else None


def this_month(now: dt.datetime | None = None) -> str:
    """The JST month of `now` (the server's clock: KPIs are off-chain time)."""
    return month_of(now or dt.datetime.now(dt.UTC))


def parse_period(value: object, now: dt.datetime | None = None) -> Period:
    """The month `value` names (this JST month when empty); InvalidInput (400) for anything
    but YYYY-MM between FIRST_MONTH and LAST_MONTH."""
    month = parse_month(value, this_month(now))
    if not FIRST_MONTH <= month <= LAST_MONTH:
        raise InvalidInput(N_("A month must look like 2026-04."), field="month")
    year, mon = (int(x) for x in month.split("-"))
    return Period(month, dt.datetime(year, mon, 1, tzinfo=JST), month_end(month))
