"""Looking up towns, for routes and pages."""

from __future__ import annotations

from sqlalchemy import select

from backend.core.db import get_db
from backend.core.errors import N_, NotFound
from backend.regions.models import Town


def town_by_slug(slug: str) -> Town:
    """The town of `slug` in the current request's session; NotFound if there is none."""
    town = get_db().session.scalar(select(Town).where(Town.slug == slug))
    if town is None:
        raise NotFound(N_("There is no such town."))
    return town
