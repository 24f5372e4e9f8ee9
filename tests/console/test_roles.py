"""Town roles: ADMIN is accepted wherever STAFF is (one rule, in has_town_role), DATA and
VERIFIER are not, and no role implies DATA; the roles the console lists are those given."""

from __future__ import annotations

from backend.accounts.models import User
from backend.accounts.roles import (
    ADMIN,
    DATA,
    ROLES,
    STAFF,
    VERIFIER,
    accepted_roles,
    has_town_role,
    roles_held,
)
from backend.core.db import get_db
from backend.merchants.services import merchant_service
from backend.regions.models import Town


def test_accepted_roles_add_admin_to_staff_only():
    assert set(accepted_roles(STAFF)) == {STAFF, ADMIN}
    assert accepted_roles(DATA) == (DATA,)
    assert accepted_roles(VERIFIER) == (VERIFIER,)
    assert set(accepted_roles(STAFF, DATA)) == {STAFF, ADMIN, DATA}
    assert set(accepted_roles()) == set(ROLES) == {ADMIN, STAFF, VERIFIER, DATA}


def test_admin_passes_every_staff_check_and_no_other(app, town):
    with app.app_context():
        s = get_db().session
        admin = s.get(User, town.user_id("admin"))
        data = s.get(User, town.user_id("data"))
        assert has_town_role(admin, town.town_id, STAFF)
        assert not has_town_role(admin, town.town_id, DATA)
        assert not has_town_role(admin, town.town_id, VERIFIER)
        assert not has_town_role(admin, town.other_town_id, STAFF)
        assert not has_town_role(data, town.town_id, STAFF)
        assert roles_held(admin, town.town_id) == [ADMIN]
        # A real STAFF-only service call: the town's shops.
        sarabetsu = s.get(Town, town.town_id)
        assert [m.id for m in merchant_service().town_merchants(admin, sarabetsu)] == [
            town.merchant_id
        ]


def test_admin_opens_staff_pages_and_data_staff_do_not(app, town):
    admin = town.api("admin")
    assert admin.client.get("/towns/sarabetsu/shops").status_code == 200
    assert admin.client.get("/towns/sarabetsu/settlements").status_code == 200
    assert town.api("data").client.get("/towns/sarabetsu/shops").status_code == 403
    page = admin.client.get("/towns/sarabetsu/admin", headers={"Accept-Language": "ja"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "町の管理者" in html
    assert 'href="/towns/sarabetsu/admin/people"' in html
    assert 'href="/towns/sarabetsu/admin/audit"' in html
    assert town.api("data").client.get("/towns/sarabetsu/admin").status_code == 200
