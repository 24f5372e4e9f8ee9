"""The `jst` and `jst_date` Jinja filters: every page writes a moment in Japan time, labelled
(issue 15 §7). Registered once for the whole app by webui/pages.py; the digits come from
backend/core/times.py, the same as the CSV files.

    {{ row.created_at|jst }}        2026-12-04 13:47 JST  /  2026年12月4日 13:47（日本時間）
    {{ lot.last_day|jst_date }}     2026-12-04            /  2026年12月4日
"""

from __future__ import annotations

import datetime as dt

from flask_babel import gettext
from markupsafe import Markup, escape

from backend.core.times import jst_day, to_jst


def _date(day: dt.date) -> str:
    return gettext("%(y)d-%(m)02d-%(d)02d", y=day.year, m=day.month, d=day.day)


def jst(at: dt.datetime | None, seconds: bool = False) -> Markup | str:
    """A moment in Japan time with its label, in a <time> element (machines read UTC)."""
    if at is None:
        return ""
    local = to_jst(at)
    clock = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    text = gettext("%(date)s %(time)s JST", date=_date(local.date()), time=clock)
    return Markup('<time datetime="%s">%s</time>') % (local.isoformat(), escape(text))


def jst_date(at: dt.datetime | dt.date | None) -> str:
    """The Japan-time day of a moment (or a day, already Japanese), in the reader's language."""
    if at is None:
        return ""
    return _date(jst_day(at))
