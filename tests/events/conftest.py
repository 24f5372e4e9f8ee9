"""Events fixtures: the console's world (Sarabetsu with its admin, staff, venue verifier, data
staff and a shop; Lake Toya on its own points; a customer and a newbie), helpers to make events
at a time relative to now, to read the check-in link, and to count what a refused request must
leave unchanged."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.events.models import Event, EventCheckIn
from backend.events.services import event_service, jst_input
from backend.points.models import PointsGrant
from tests.console import conftest as console
from tests.console.conftest import EMAILS, Town, form

app = console.app
town = console.town
__all__ = ["EMAILS", "Town", "app", "counts", "form", "make_event", "town"]


def counts(app: Flask) -> dict[str, int]:
    """What a refused request must leave unchanged."""
    with app.app_context():
        s = get_db().session
        return {
            m.__tablename__: int(s.scalar(sa.select(sa.func.count()).select_from(m)) or 0)
            for m in (Event, EventCheckIn, PointsGrant, OutboxTx, AuditLog)
        }


def event_form(
    *,
    start: dt.timedelta = -dt.timedelta(hours=1),
    end: dt.timedelta = dt.timedelta(hours=2),
    points: int | str = 300,
    programme_id: int | str = 4,
    **over: str,
) -> dict[str, str]:
    """The console's create/edit form, times relative to now (Japan time, as typed)."""
    now = dt.datetime.now(dt.UTC)
    return {
        "name_ja": "川の清掃",
        "name_en": "River clean-up",
        "place_ja": "更別川の橋",
        "place_en": "Sarabetsu river bridge",
        "starts_at": jst_input(now + start),
        "ends_at": jst_input(now + end),
        "points": str(points),
        "programme_id": str(programme_id),
        **over,
    }


def make_event(
    app: Flask,
    town_id: int,
    *,
    start: dt.timedelta = -dt.timedelta(hours=1),
    end: dt.timedelta = dt.timedelta(hours=2),
    points: int = 300,
    name_en: str = "River clean-up",
    status: str = "scheduled",
) -> int:
    """An event row written directly (its time may be in the past, which the form refuses)."""
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        s = get_db().session
        staff = s.scalar(sa.text("SELECT id FROM users ORDER BY id LIMIT 1"))
        ev = Event(
            town_id=town_id,
            request_key=f"direct-{now.timestamp()}-{name_en}",
            name_ja=name_en,
            name_en=name_en,
            place_ja="会場",
            place_en="Hall",
            starts_at=now + start,
            ends_at=now + end,
            points=points,
            programme_id=4,
            status=status,
            created_by=staff,
        )
        s.add(ev)
        s.commit()
        return ev.id


def check_in_token(app: Flask, slug_town_id: int, event_id: int) -> str:
    with app.app_context():
        ev = get_db().session.get(Event, event_id)
        assert ev is not None and ev.town_id == slug_town_id
        return event_service().check_in_token(ev)


def grants(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        return [
            {
                "user_id": g.user_id,
                "key": g.grant_key,
                "amount": int(g.amount),
                "pid": g.programme_id,
            }
            for g in get_db().session.scalars(sa.select(PointsGrant).order_by(PointsGrant.id))
        ]
