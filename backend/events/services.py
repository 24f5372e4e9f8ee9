"""Events that grant points (issue 14 §4). `EventService` puts the domain's parts together:
staff's events and the public lists (editing.py), check-ins and their points (checkin.py),
on what they share (base.py). `event_service()` builds one for the current app and request.
"""

from __future__ import annotations

from flask import current_app

from backend.core.db import get_db
from backend.core.purpose_keys import EVENT_CHECK_IN, purpose_key
from backend.events.base import JST, MAX_POINTS, EventProgramme, Listed, jst, jst_input
from backend.events.checkin import Attendance, CheckIns
from backend.events.editing import EventEditing
from backend.merchants.services import merchant_service
from backend.partners.services import partner_service
from backend.points.services import points_service
from backend.points.town_settings import town_settings_service

__all__ = [
    "JST",
    "MAX_POINTS",
    "Attendance",
    "EventProgramme",
    "EventService",
    "Listed",
    "event_service",
    "jst",
    "jst_input",
]


class EventService(EventEditing, CheckIns):
    """Events, their lists and their check-ins over one DB session."""


def event_service() -> EventService:
    """An EventService for the current app and request."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return EventService(
        get_db().session(),
        points=points_service(),
        settings=town_settings_service(),
        merchants=merchant_service,
        partners=partner_service,
        token_key=purpose_key(str(app.config["SECRET_KEY"]), EVENT_CHECK_IN),
    )
