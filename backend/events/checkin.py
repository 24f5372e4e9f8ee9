"""Checking in to an event, and the points for it, once per person per event.

Two ways in, one rule:
- the attendee, signed in, opens the link of the event's QR (its token: backend/events/tokens.py)
  and confirms (`check_in_self`);
- venue staff (VERIFIER) or town STAFF scan or type the attendee's single-use customer code
  ("P" + 12 digits, from their phone) or printed resident card of the town (`check_in_by_staff`).

Either way, while the event runs (from its start to its end; not cancelled), one transaction
locks the event's row (an edit of its points or a cancellation comes before or after a
check-in, never in the middle: every attendee gets the points the event shows), inserts the
`event_check_ins` row (UNIQUE per event and person: a second check-in, however it
comes and however many at once, fails on it and gets AlreadyCheckedIn, 409) and queues the
points through `PointsService.grant` with the grant key `event:<id>` (points_grants is UNIQUE
per user, town, programme and key; the outbox key and the audit row come with it, and the
programme's daily caps are counted there). Any refusal rolls the whole transaction back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.models import User
from backend.accounts.roles import STAFF, VERIFIER, require_town_role
from backend.core.errors import N_, AppError
from backend.events.base import EventBase, jst
from backend.events.errors import (
    AlreadyCheckedIn,
    AttendeeNotFound,
    CheckInTokenInvalid,
    EventNotRunning,
)
from backend.events.models import CANCELLED, SELF, STAFF_SCAN, Event, EventCheckIn
from backend.events.tokens import token_matches
from backend.points.models import GRANT_PENDING
from backend.points.programmes import EVENT_PRIZE
from backend.regions.models import Town

CUSTOMER_CODE_RE = re.compile(r"P\d{12}")  # backend/merchants/customer_codes.py CODE_RE
CARD_RE = re.compile(r"C[A-Z0-9]{10}")  # backend/merchants/card_issue.py
MAX_CODE = 64


@dataclass(frozen=True)
class Attendance:
    """A check-in as pages show it: who, how, when, and the state of its points
    (points_grants: pending -> confirmed, or failed)."""

    check_in: EventCheckIn
    user: User
    points_state: str


class CheckIns(EventBase):
    """Check-ins of an event (the class EventService mixes in)."""

    def _existing(self, event_id: int, user_id: int) -> EventCheckIn | None:
        return self.session.scalar(
            select(EventCheckIn).where(
                EventCheckIn.event_id == event_id, EventCheckIn.user_id == user_id
            )
        )

    def _already(self, row: EventCheckIn | None) -> AlreadyCheckedIn:
        at = jst(row.created_at) if row is not None else ""
        return AlreadyCheckedIn(
            N_("You are already checked in to this event (%(at)s JST). Points are given once."),
            at=at,
        )

    def require_running(self, event: Event) -> None:
        """EventNotRunning unless check-in is open now (times in Japan time)."""
        now = self._now()
        if event.status == CANCELLED:
            raise EventNotRunning(N_("This event was cancelled."))
        if now < event.starts_at:
            raise EventNotRunning(
                N_("Check-in opens when the event starts, at %(at)s JST."), at=jst(event.starts_at)
            )
        if now >= event.ends_at:
            raise EventNotRunning(
                N_("This event ended at %(at)s JST: check-in is closed."), at=jst(event.ends_at)
            )

    def check_token(self, event: Event, token: object) -> None:
        if not token_matches(self._token_key, event.id, event.qr_generation, token):
            raise CheckInTokenInvalid(
                N_("This check-in link is not valid. Scan the QR code at the venue again.")
            )

    def check_in_self(
        self, user: User | None, town: Town, event_id: object, token: object
    ) -> EventCheckIn:
        """The signed-in attendee checks in with the token of the event's QR."""
        event = self._event(town, event_id)
        if user is None:
            raise AuthenticationRequired(N_("Please sign in."))
        attendee = user
        self.check_token(event, token)
        return self._check_in(town, event, attendee, SELF, None)

    def check_in_by_staff(
        self, staff: User | None, town: Town, event_id: object, code: object
    ) -> EventCheckIn:
        """Venue staff (or town staff) check an attendee in by their customer code or card."""
        event = self._event(town, event_id)
        helper = require_town_role(staff, town.id, VERIFIER, STAFF)
        attendee = self._attendee(town, code)
        return self._check_in(town, event, attendee, STAFF_SCAN, helper)

    def _attendee(self, town: Town, code: object) -> User:
        text = (
            code.strip().replace(" ", "").replace("-", "").upper() if isinstance(code, str) else ""
        )
        if len(text) > MAX_CODE or not (
            CUSTOMER_CODE_RE.fullmatch(text) or CARD_RE.fullmatch(text)
        ):
            raise AttendeeNotFound(
                N_(
                    "Scan or type the attendee's code (P and 12 digits, on their phone) or "
                    "printed card (C and 10 letters or digits)."
                ),
                field="code",
            )
        merchants = self._merchants()
        if text.startswith("P"):
            user_id = merchants.customer_code_holder(text)
        else:
            user_id = merchants.card_holder_for_use(town, text)  # a locked card: CardLocked
        user = self.session.get(User, user_id) if user_id is not None else None
        if user is None:
            raise AttendeeNotFound(
                N_(
                    "Nobody has this code: it may have expired or be another town's card. "
                    "Ask the attendee to show a new code."
                ),
                field="code",
            )
        return user

    def _check_in(
        self, town: Town, event: Event, attendee: User, method: str, staff: User | None
    ) -> EventCheckIn:
        # The event's row lock, then its points, programme, window and status read again: an
        # edit or a cancellation committed meanwhile is seen, and one waiting comes after this
        # check-in (and then finds it: EventLocked).
        event = self._event(town, event.id, lock=True)
        try:
            self.require_running(event)
            if (found := self._existing(event.id, attendee.id)) is not None:
                raise self._already(found)
        except AppError:
            self.session.rollback()  # the lock goes with it
            raise
        row = EventCheckIn(
            event_id=event.id,
            user_id=attendee.id,
            method=method,
            staff_user_id=staff.id if staff else None,
            created_at=self._now(),
        )
        self.session.add(row)
        try:
            self.session.flush()  # the UNIQUE (event, user) decides between concurrent check-ins
        except IntegrityError:
            self.session.rollback()
            raise self._already(self._existing(event.id, attendee.id)) from None

        def link(grant_row: object) -> None:
            row.points_grant_id = grant_row.id  # type: ignore[attr-defined]

        try:
            grant = self.points.grant(
                attendee,
                town,
                replace(EVENT_PRIZE, programme_id=event.programme_id),
                amount=event.points,
                key=f"event:{event.id}",
                actor=f"user:{(staff or attendee).id}",
                details={"event_id": event.id, "check_in_id": row.id, "method": method},
                on_queued=link,
            )
        except Exception:
            self.session.rollback()
            raise
        if row.points_grant_id != grant.id:  # the grant was there before this check-in
            self.session.rollback()
            raise self._already(self._existing(event.id, attendee.id))
        return row

    # ------------------------------------------------------------------ reading

    def my_check_in(self, user: User, event: Event) -> Attendance | None:
        row = self._existing(event.id, user.id)
        if row is None:
            return None
        return Attendance(row, user, self._states([row]).get(row.id, GRANT_PENDING))

    def attendees(self, actor: User | None, town: Town, event: Event) -> list[Attendance]:
        """Everyone checked in to the event, newest first, with their points' state
        (STAFF or venue staff of the event's town)."""
        require_town_role(actor, town.id, STAFF, VERIFIER)
        rows = list(
            self.session.scalars(
                select(EventCheckIn)
                .where(EventCheckIn.event_id == event.id)
                .order_by(EventCheckIn.id.desc())
            )
        )
        users = {
            u.id: u
            for u in self.session.scalars(
                select(User).where(User.id.in_([r.user_id for r in rows]))
            )
        }
        states = self._states(rows)
        return [Attendance(r, users[r.user_id], states.get(r.id, GRANT_PENDING)) for r in rows]

    def _states(self, rows: list[EventCheckIn]) -> dict[int, str]:
        grants = self.points.grant_states([r.points_grant_id for r in rows if r.points_grant_id])
        return {
            r.id: grants.get(r.points_grant_id, GRANT_PENDING)
            if r.points_grant_id
            else GRANT_PENDING
            for r in rows
        }
