"""Looking up towns, for routes and pages."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.core.db import get_db
from backend.core.errors import N_, NotFound
from backend.regions.models import Town


def town_by_slug(slug: str) -> Town:
    """The town of `slug` in the current request's session; NotFound if there is none."""
    town = get_db().session.scalar(select(Town).where(Town.slug == slug))
    if town is None:
        raise NotFound(N_("There is no such town."))
    return town


def create_town(
    session: Session,
    *,
    slug: str,
    name_ja: str,
    name_en: str,
    prefecture_ja: str,
    prefecture_en: str,
    chain_id: int,
    points_address: str,
    points_symbol: str,
) -> Town:
    """Add a town whose contracts are deployed (backend/onboarding); the caller commits. The
    same slug again returns the existing row with its points address brought up to date."""
    town = session.scalar(select(Town).where(Town.slug == slug))
    if town is None:
        town = Town(slug=slug, name_ja=name_ja, name_en=name_en, chain_id=chain_id)
        session.add(town)
    town.prefecture_ja, town.prefecture_en = prefecture_ja, prefecture_en
    town.points_address, town.points_symbol, town.chain_id = points_address, points_symbol, chain_id
    session.flush()
    return town


def town_exists(session: Session, slug: str) -> bool:
    return session.scalar(select(Town.id).where(Town.slug == slug)) is not None
