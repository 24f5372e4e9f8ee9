"""Demo data for `make run`: each demo town holds one event, running from today 00:00 JST for a
week, so that its public events page (and its partner town's) lists something and the console's
Events section has an event to check people in to. Idempotent: a town with an event gets none
more."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from backend.accounts.roles import STAFF, grant_town_role
from backend.core.db import get_db, utcnow
from backend.events.base import JST
from backend.events.models import Event
from backend.merchants.demo import STAFF_PASSWORD, TOWNS
from backend.points.demo import demo_user
from backend.points.programmes import EVENT_PRIZE
from backend.regions.models import Town

EVENTS = {
    "sarabetsu": (
        ("秋の収穫祭", "Autumn harvest fair"),
        ("更別村役場前広場", "Square in front of the Sarabetsu village office"),
        300,
    ),
    "toyako": (
        ("湖畔の花火大会", "Lakeside fireworks"),
        ("洞爺湖温泉 湖畔", "Toya-ko Onsen lakeside"),
        200,
    ),
}


def load_demo(town: Town) -> None:
    names = EVENTS.get(town.slug)
    session = get_db().session
    if names is None or session.scalar(select(Event.id).where(Event.town_id == town.id)):
        return
    demo = TOWNS.get(town.slug, TOWNS["sarabetsu"])
    staff = demo_user(demo.staff_email, STAFF_PASSWORD, demo.staff_name)
    grant_town_role(staff, town.id, STAFF)
    (name_ja, name_en), (place_ja, place_en), points = names
    today = utcnow().astimezone(JST).replace(hour=0, minute=0, second=0, microsecond=0)
    session.add(
        Event(
            town_id=town.id,
            request_key=f"demo-{town.slug}",
            name_ja=name_ja,
            name_en=name_en,
            place_ja=place_ja,
            place_en=place_en,
            starts_at=today.astimezone(dt.UTC),
            ends_at=(today + dt.timedelta(days=7, hours=18)).astimezone(dt.UTC),
            points=points,
            programme_id=EVENT_PRIZE.programme_id,
            created_by=staff.id,
        )
    )
    session.commit()
