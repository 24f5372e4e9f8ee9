"""What the events services share: the session and collaborators (`EventBase`), looking an
event up, its QR token, audit rows, and reading times in Japan time (JST) from forms.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.core.db import utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.times import JST, jst_text
from backend.core.upsert import lock_row
from backend.events.errors import EventNotFound
from backend.events.models import SCHEDULED, Event, EventCheckIn
from backend.events.tokens import check_in_token
from backend.merchants.services import MerchantService
from backend.partners.services import PartnerService
from backend.points.services import PointsService
from backend.points.town_settings import (
    TownSettingsService,
)
from backend.regions.models import Town

MAX_NAME = 120
MAX_PLACE = 200
MAX_POINTS = 100_000  # per attendee of one event
MAX_LENGTH = dt.timedelta(days=31)  # from start to end
MAX_AHEAD = dt.timedelta(days=2 * 366)  # how far ahead an event may be planned
UPCOMING_LIMIT = 100


def jst(at: dt.datetime) -> str:
    """A time in a sentence: "2026-12-24 18:00" in Japan time (the sentence says JST); pages
    show times with the |jst filter (webui/times.py)."""
    return jst_text(at)


def jst_input(at: dt.datetime) -> str:
    """A time as a datetime-local input holds it (Japan time, no offset)."""
    return at.astimezone(JST).strftime("%Y-%m-%dT%H:%M")


def _text(form: Mapping[str, Any], field: str, maximum: int, *, optional: bool = False) -> str:
    value = form.get(field)
    text = value.strip() if isinstance(value, str) else ""
    if optional and not text:
        return ""
    if not text or len(text) > maximum or "\x00" in text:
        raise InvalidInput(N_("Enter 1 to %(max)d characters."), field=field, max=maximum)
    return text


def _when(form: Mapping[str, Any], field: str) -> dt.datetime:
    """A date and time from a form ("2026-12-24T18:00", Japan time unless an offset is given)."""
    raw = form.get(field)
    try:
        value = dt.datetime.fromisoformat(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if value is None or not 2000 <= value.year <= 2100:  # year 1 in JST is before year 1 in UTC
        raise InvalidInput(N_("Enter a date and time (Japan time)."), field=field)
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True)
class EventProgramme:
    """A programme of the town an event's points may come from (kind "event prize")."""

    programme_id: int
    name_ja: str
    name_en: str

    def name(self, locale: str | None) -> str:
        return self.name_ja if (locale or "ja").startswith("ja") else self.name_en


@dataclass(frozen=True)
class Listed:
    """An upcoming event with its town, for the public list (own town or a partner's)."""

    event: Event
    town: Town
    partner: bool


class EventBase:
    """Events over one DB session; the collaborators are the other domains' services."""

    def __init__(
        self,
        session: Session,
        *,
        points: PointsService,
        settings: TownSettingsService,
        merchants: Callable[[], MerchantService],
        partners: Callable[[], PartnerService],
        token_key: bytes,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.points = points
        self.settings = settings
        self._merchants = merchants
        self._partners = partners
        self._token_key = token_key
        self._now = now

    def now(self) -> dt.datetime:
        return self._now()

    # ------------------------------------------------------------------ look-ups

    def _event(self, town: Town, event_id: object, *, lock: bool = False) -> Event:
        """An event of `town` (EventNotFound otherwise). With `lock`, its row is locked until
        the transaction ends (`lock_row`: SELECT ... FOR UPDATE does nothing on SQLite) and
        read again under the lock: what staff change and what a check-in reads (its points,
        programme, window, status) are decided one after the other, never side by side."""
        eid = db_id_or_none(event_id)
        if eid is None:
            raise EventNotFound(N_("There is no such event."))
        where = (Event.id == eid, Event.town_id == town.id)
        if lock:
            lock_row(self.session, Event.status, *where)
        q = select(Event).where(*where)
        if lock:
            q = q.execution_options(populate_existing=True)
        event = self.session.scalar(q)
        if event is None:
            raise EventNotFound(N_("There is no such event."))
        return event

    def public_event(self, town: Town, event_id: object) -> Event:
        """An event of `town` as anyone may see it (cancelled ones too: they say so)."""
        return self._event(town, event_id)

    def check_in_token(self, event: Event) -> str:
        """The token the event's QR carries now (backend/events/tokens.py)."""
        return check_in_token(self._token_key, event.id, event.qr_generation)

    def _audit(self, user: User, action: str, event: Event, **details: Any) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action=action,
                subject_type="event",
                subject_id=str(event.id),
                reason="event set by town staff",
                details={"town_id": event.town_id, "event_id": event.id, **details},
            )
        )

    def is_running(self, event: Event) -> bool:
        """Whether check-in is open: not cancelled, from its start to its end."""
        return event.status == SCHEDULED and event.starts_at <= self._now() < event.ends_at

    def checked_in_count(self, event: Event) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(EventCheckIn)
                .where(EventCheckIn.event_id == event.id)
            )
            or 0
        )
