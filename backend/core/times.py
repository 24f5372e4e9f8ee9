"""Japan time, the one way every screen and every CSV writes a moment (issue 15 §7).

The database keeps aware UTC datetimes (core/db.py); people read Japan time. Screens use the
`jst` / `jst_date` Jinja filters (webui/times.py), CSV files `jst_text`: both cut the seconds
the same way (dropped, never rounded), so a row reads the same minute on the page and in the
file. Japan has no daylight saving time, so a fixed offset is exact.
"""

from __future__ import annotations

import datetime as dt

JST = dt.timezone(dt.timedelta(hours=9), "JST")


def as_utc(value: dt.datetime) -> dt.datetime:
    """A stored time as UTC-aware: SQLite hands back naive UTC, PostgreSQL aware times."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def to_jst(at: dt.datetime) -> dt.datetime:
    """`at` in Japan time; a naive datetime is taken as UTC (what the database stores)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(JST)


def jst_text(at: dt.datetime, *, seconds: bool = False) -> str:
    """ "2026-12-04 13:47" (Japan time, seconds dropped unless `seconds`): CSV cells."""
    return to_jst(at).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def jst_day(at: dt.datetime | dt.date) -> dt.date:
    """The Japan-time day of a moment (a date is already a day)."""
    if isinstance(at, dt.datetime):
        return to_jst(at).date()
    return at
