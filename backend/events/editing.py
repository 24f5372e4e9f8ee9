"""Events that grant points (issue 14 §4): town staff create, edit and cancel an event (names
in ja/en, place, time in Japan time, the points for attending and the programme they come
from); the public sees the upcoming events of a town and of its partner towns.

Rights: town STAFF (and the admin) create, edit, cancel and renew an event's QR; venue staff
(VERIFIER) and STAFF see the town's events and their attendees and check people in
(backend/events/checkin.py). Every change writes an AuditLog row ("event.*"); the form's
one-time key makes a double submit one event.

The points come from one of the town's programmes of the "event prize" kind
(backend/points/programmes.py EVENT_PRIZE; its rows in backend/points/town_settings.py), so
its expiry and daily caps apply. Once someone has checked in, the points and the programme of
the event no longer change (EventLocked): every attendee gets the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.accounts.models import User
from backend.accounts.roles import STAFF, VERIFIER, require_town_role
from backend.core.errors import N_, InvalidInput
from backend.core.numbers import ascii_int, db_id_or_none
from backend.events.base import (
    MAX_AHEAD,
    MAX_LENGTH,
    MAX_NAME,
    MAX_PLACE,
    MAX_POINTS,
    UPCOMING_LIMIT,
    EventBase,
    EventProgramme,
    Listed,
    _text,
    _when,
)
from backend.events.errors import EventLocked
from backend.events.models import CANCELLED, SCHEDULED, Event
from backend.points.programmes import EVENT_PRIZE
from backend.points.town_settings import (
    CONFIRMED as SETTING_CONFIRMED,
)
from backend.points.town_settings import check_request_key, town_programme
from backend.regions.models import Town


class EventEditing(EventBase):
    """Staff's events (create, edit, cancel, renew the QR) and the public lists."""

    # ------------------------------------------------------------------ reading

    def programmes(self, actor: User | None, town: Town) -> list[EventProgramme]:
        """The town's programmes an event's points may come from: of the "event prize" kind,
        active, their last on-chain change confirmed. STAFF only."""
        return [
            EventProgramme(int(v.row.programme_id), v.row.name_ja, v.row.name_en)
            for v in self.settings.programmes(actor, town)
            if v.row.kind == EVENT_PRIZE.name and v.row.active and v.status == SETTING_CONFIRMED
        ]

    def programme_name(self, town: Town, programme_id: int, locale: str | None) -> str:
        row = town_programme(self.session, town.id, programme_id)
        return row.name(locale) if row is not None else ""

    def town_events(self, actor: User | None, town: Town) -> list[Event]:
        """Every event of the town, the latest start first (STAFF or venue staff)."""
        require_town_role(actor, town.id, STAFF, VERIFIER)
        return list(
            self.session.scalars(
                select(Event)
                .where(Event.town_id == town.id)
                .order_by(Event.starts_at.desc(), Event.id.desc())
                .limit(500)
            )
        )

    def staff_event(self, actor: User | None, town: Town, event_id: object) -> Event:
        """One event of the town for its staff or venue staff (404 before 403: the id of
        another town's event says nothing)."""
        event = self._event(town, event_id)
        require_town_role(actor, town.id, STAFF, VERIFIER)
        return event

    def upcoming(self, town: Town) -> list[Listed]:
        """The events of `town` and of its active partner towns that have not ended and are
        not cancelled, soonest first (anyone may see them)."""
        partners = {t.id: t for t in self._partners().active_partners(town)}
        towns = {town.id: town, **partners}
        rows = self.session.scalars(
            select(Event)
            .where(
                Event.town_id.in_(sorted(towns)),
                Event.status == SCHEDULED,
                Event.ends_at > self._now(),
            )
            .order_by(Event.starts_at, Event.id)
            .limit(UPCOMING_LIMIT)
        )
        return [Listed(e, towns[e.town_id], e.town_id != town.id) for e in rows]

    # ------------------------------------------------------------------ writing

    def _values(self, actor: User, town: Town, form: Mapping[str, Any]) -> dict[str, Any]:
        starts = _when(form, "starts_at")
        ends = _when(form, "ends_at")
        now = self._now()
        if ends <= starts:
            raise InvalidInput(N_("The event must end after it starts."), field="ends_at")
        if ends - starts > MAX_LENGTH:
            raise InvalidInput(
                N_("An event lasts at most %(days)d days."), field="ends_at", days=MAX_LENGTH.days
            )
        if starts > now + MAX_AHEAD:
            raise InvalidInput(N_("An event starts within two years from now."), field="starts_at")
        points = ascii_int(form.get("points"))
        if points is None or not 1 <= points <= MAX_POINTS:
            raise InvalidInput(
                N_("Enter a whole number of points from 1 to %(max)d."),
                field="points",
                max=MAX_POINTS,
            )
        pid = db_id_or_none(form.get("programme_id"))
        if pid is None or pid not in {p.programme_id for p in self.programmes(actor, town)}:
            raise InvalidInput(N_("Choose a programme."), field="programme_id")
        place_ja = _text(form, "place_ja", MAX_PLACE)
        return {
            "name_ja": _text(form, "name_ja", MAX_NAME),
            "name_en": _text(form, "name_en", MAX_NAME),
            "place_ja": place_ja,
            "place_en": _text(form, "place_en", MAX_PLACE, optional=True) or place_ja,
            "starts_at": starts,
            "ends_at": ends,
            "points": points,
            "programme_id": pid,
        }

    def create(
        self, actor: User | None, town: Town, form: Mapping[str, Any], request_key: object
    ) -> Event:
        """A new event (STAFF). A replayed form key returns the first event, writing nothing."""
        user = require_town_role(actor, town.id, STAFF)
        key = check_request_key(request_key)
        if (first := self._replay(town, key)) is not None:
            return first
        values = self._values(user, town, form)
        if values["ends_at"] <= self._now():
            raise InvalidInput(N_("This time has already passed."), field="ends_at")
        event = Event(town_id=town.id, request_key=key, created_by=user.id, **values)
        try:
            self.session.add(event)
            self.session.flush()
            self._audit(user, "event.create", event, **_details(event))
            self.session.commit()
        except IntegrityError:  # the same form twice at once: the first one stands
            self.session.rollback()
            if (first := self._replay(town, key)) is not None:
                return first
            raise
        return event

    def _replay(self, town: Town, key: str) -> Event | None:
        return self.session.scalar(
            select(Event).where(Event.town_id == town.id, Event.request_key == key)
        )

    def update(
        self, actor: User | None, town: Town, event_id: object, form: Mapping[str, Any]
    ) -> Event:
        """Edit an event (STAFF). Its points and programme are fixed once someone has
        checked in (EventLocked); a cancelled event is not edited."""
        self._event(town, event_id)
        user = require_town_role(actor, town.id, STAFF)
        values = self._values(user, town, form)  # may seed the town's programme rows: a commit
        # Locked from here to the commit: a check-in comes wholly before (counted below) or
        # after (with the new points), never in between (checkin.py).
        event = self._event(town, event_id, lock=True)
        if event.status == CANCELLED:
            raise EventLocked(N_("This event was cancelled."))
        changed = (values["points"], values["programme_id"]) != (event.points, event.programme_id)
        if changed and self.checked_in_count(event):
            raise EventLocked(
                N_(
                    "People have checked in already: the points and the programme of this "
                    "event cannot change."
                )
            )
        before = _details(event)
        for name, value in values.items():
            setattr(event, name, value)
        event.updated_at = self._now()
        self._audit(user, "event.update", event, before=before, after=_details(event))
        self.session.commit()
        return event

    def cancel(self, actor: User | None, town: Town, event_id: object) -> Event:
        """Cancel an event (STAFF): nobody checks in any more; points given stay given."""
        event = self._event(town, event_id, lock=True)
        user = require_town_role(actor, town.id, STAFF)
        if event.status != CANCELLED:
            event.status = CANCELLED
            event.cancelled_by = user.id
            event.cancelled_at = event.updated_at = self._now()
            self._audit(user, "event.cancel", event)
            self.session.commit()
        return event

    def renew_qr(self, actor: User | None, town: Town, event_id: object) -> Event:
        """A new QR for the event (STAFF): every earlier QR and link stops working."""
        event = self._event(town, event_id, lock=True)
        user = require_town_role(actor, town.id, STAFF)
        event.qr_generation += 1
        event.updated_at = self._now()
        self._audit(user, "event.renew_qr", event, generation=event.qr_generation)
        self.session.commit()
        return event


def _details(event: Event) -> dict[str, Any]:
    return {
        "name_ja": event.name_ja,
        "name_en": event.name_en,
        "place_ja": event.place_ja,
        "place_en": event.place_en,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat(),
        "points": event.points,
        "programme_id": event.programme_id,
    }
