"""Town roles are checked in services: 401 for nobody, 403 for the wrong role or town."""

from __future__ import annotations

import pytest

from backend.accounts.errors import AuthenticationRequired
from backend.accounts.roles import (
    STAFF,
    VERIFIER,
    grant_town_role,
    has_town_role,
    require_town_role,
)
from backend.core.db import get_db
from backend.core.errors import Forbidden
from backend.regions.models import Town
from tests.factories import TownFactory, UserFactory


def _town(slug: str) -> Town:
    return TownFactory(slug=slug, name_ja=slug, name_en=slug, chain_id=31337)


def test_roles_are_per_town_and_per_role(app):
    with app.app_context():
        s = get_db().session
        sarabetsu, toyako = _town("sarabetsu"), _town("toyako")
        staff = UserFactory(email="staff@example.jp")
        grant_town_role(staff, sarabetsu.id, STAFF)
        grant_town_role(staff, sarabetsu.id, STAFF)  # idempotent
        s.commit()
        assert require_town_role(staff, sarabetsu.id, STAFF) is staff
        assert not has_town_role(staff, sarabetsu.id, VERIFIER)
        with pytest.raises(Forbidden):
            require_town_role(staff, toyako.id, STAFF)  # another town
        with pytest.raises(Forbidden):
            require_town_role(staff, sarabetsu.id, VERIFIER)  # another role
        with pytest.raises(AuthenticationRequired):
            require_town_role(None, sarabetsu.id, STAFF)
        with pytest.raises(ValueError, match="unknown role"):
            grant_town_role(staff, sarabetsu.id, "mayor")
