"""Errors of the events domain (each maps to a 4xx; pages show the translated message)."""

from __future__ import annotations

from backend.core.errors import AppError, Conflict, NotFound


class EventNotFound(NotFound):
    code = "event_not_found"


class CheckInTokenInvalid(AppError):
    """The check-in link's token is not this event's current one (guessed, or an old QR)."""

    status = 403
    code = "check_in_token_invalid"


class EventNotRunning(Conflict):
    """Check-in outside the event's window (before its start, after its end) or a cancelled
    event: nothing is written."""

    code = "event_not_running"


class AlreadyCheckedIn(Conflict):
    """The person has checked in to this event before: points are given once."""

    code = "already_checked_in"


class EventLocked(Conflict):
    """The points or programme of an event cannot change once someone has checked in."""

    code = "event_locked"


class AttendeeNotFound(AppError):
    """The code venue staff scanned or typed names nobody (invalid, expired, another town's
    card)."""

    status = 400
    code = "attendee_not_found"
