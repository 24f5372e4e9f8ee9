"""Errors of notifications (each maps to a 4xx; pages show its translated message)."""

from __future__ import annotations

from backend.core.errors import InvalidInput, NotFound


class NotificationNotFound(NotFound):
    """No such notification of this person (another person's id is not found either)."""

    code = "notification_not_found"


class UnknownSwitch(InvalidInput):
    """A settings form named a kind or channel there is no switch for: nothing changes."""

    code = "unknown_notification_switch"


class InvalidOffLink(InvalidInput):
    """A mailed "switch off" link that this server did not sign: nothing changes."""

    code = "invalid_link"
