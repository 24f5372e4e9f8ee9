"""The calendar of partner clearing: months of Japan time (JST, UTC+9, no daylight saving, so
the same as Asia/Tokyo), written YYYY-MM. A partner payment belongs to the JST month of its
block; a month's statement is settled once it is over; a yen rate set in one month is in force
from the next. Strings of that form sort as the months do, so the database compares them.
"""

from __future__ import annotations

import datetime as dt
import re

from backend.core.errors import N_, InvalidInput
from backend.core.times import JST

_MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")

__all__ = ["JST", "month_end", "month_of", "next_month", "parse_month"]


def month_of(moment: dt.datetime) -> str:
    """The JST month (YYYY-MM) of `moment`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(JST).strftime("%Y-%m")


def month_end(month: str) -> dt.datetime:
    """The first instant after JST month `month`."""
    year, mon = (int(x) for x in month.split("-"))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return dt.datetime(year, mon, 1, tzinfo=JST)


def next_month(month: str) -> str:
    """The JST month after `month`."""
    return month_end(month).strftime("%Y-%m")


def parse_month(value: object, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _MONTH_RE.fullmatch(value):
        raise InvalidInput(N_("A month must look like 2026-04."), field="month")
    return value
