"""Demo data for `make run`: a resident of each demo town with the town's welcome points (sent by
the worker)."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from backend.accounts.models import User
from backend.accounts.services import AccountService
from backend.chain.api import get_vault
from backend.core.db import get_db
from backend.points.services import points_service
from backend.regions.models import Town

RESIDENT_PASSWORD = "furusato-demo-resident"  # noqa: S105 - a public demo account
# town slug -> (e-mail, name) of its demo resident
RESIDENTS = {
    "sarabetsu": ("resident@sarabetsu.example", "更別 花子"),
    "toyako": ("resident@toyako.example", "洞爺 湖太郎"),
}
RESIDENT_EMAIL = RESIDENTS["sarabetsu"][0]


def demo_user(email: str, password: str, name: str) -> User:
    """The demo user with this email, signed up once (idempotent)."""
    session = get_db().session
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        user = AccountService(session(), lambda: get_vault(app)).signup(
            email, password, name, verified=True
        )
    return user


def demo_resident(town: Town) -> User:
    """The town's demo resident (Sarabetsu's for a town the demo does not know)."""
    email, name = RESIDENTS.get(town.slug, RESIDENTS["sarabetsu"])
    return demo_user(email, RESIDENT_PASSWORD, name)


def load_demo(town: Town) -> None:
    resident = demo_resident(town)
    points_service().grant_welcome_points(resident, town)
    print(f"demo resident ({town.slug}): {resident.email} / {RESIDENT_PASSWORD}")
