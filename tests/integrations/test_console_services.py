"""The console's Services section (issue 14 §1): the town's admin registers a service and sees
its key once (no-store; the list and the service's page never show it again), rotates it (two
keys work), revokes one; bad input is shown on the page with 400 and writes nothing; staff,
another town's admin and strangers are refused (403, or the sign-in page)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from backend.core.db import get_db
from backend.integrations.models import ServiceAccount, ServiceApiKey
from tests.integrations.conftest import ADMIN_EMAIL, OTHER_ADMIN, THANKS, make_service, state

KEY = re.compile(r'data-testid="api-key">(fur_[0-9a-f]{12}_[A-Za-z0-9_-]{43})<')
URL = "/towns/sarabetsu/admin/services"


def _form(api, url: str, data: dict | None = None):
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(url, data={**(data or {}), "csrf_token": api.token})


def _authenticates(app, key: str) -> bool:
    r = app.test_client().get("/api/v1/service", headers={"Authorization": f"Bearer {key}"})
    return r.status_code == 200


def test_admin_registers_a_service_and_sees_its_key_once(app, world, admins):
    admin = world.api(ADMIN_EMAIL)
    page = admin.get(URL)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="programme_ids"' in html and "width=device-width" in html
    r = _form(
        admin,
        URL,
        {
            "name_ja": "相乗り",
            "name_en": "Car share",
            "programme_ids": str(THANKS),
            "daily_budget": "5000",
            "monthly_budget": "100000",
            "cap_per_issuance": "200",
        },
    )
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    key = KEY.search(r.get_data(as_text=True)).group(1)
    assert _authenticates(app, key)
    with app.app_context():
        account = get_db().session.scalar(sa.select(ServiceAccount))
        assert (account.name_ja, account.name_en, account.programme_ids) == (
            "相乗り",
            "Car share",
            [THANKS],
        )
        assert int(account.cap_per_issuance) == 200 and int(account.monthly_budget) == 100000
    # Never shown again: not in the list, not on the service's page.
    listed = admin.get(URL).get_data(as_text=True)
    shown = admin.get(f"{URL}/{account.id}").get_data(as_text=True)
    assert "Car share" in listed or "相乗り" in listed
    assert key not in listed and key not in shown
    assert key.split("_")[1] in shown  # its prefix identifies it


def test_bad_input_is_shown_and_writes_nothing(app, world, admins):
    admin = world.api(ADMIN_EMAIL)
    before = state(app)
    for data, field in (
        (
            {"name_ja": "", "name_en": "Gym", "programme_ids": str(THANKS), "daily_budget": "10"},
            "name_ja",
        ),
        ({"name_ja": "ジム", "name_en": "Gym", "daily_budget": "10"}, "programme_ids"),
        (
            {"name_ja": "ジム", "name_en": "Gym", "programme_ids": "999", "daily_budget": "10"},
            "programme_ids",
        ),
        (
            {
                "name_ja": "ジム",
                "name_en": "Gym",
                "programme_ids": str(THANKS),
                "daily_budget": "-1",
            },
            "daily_budget",
        ),
        (
            {
                "name_ja": "ジム",
                "name_en": "Gym",
                "programme_ids": str(THANKS),
                "daily_budget": "1e9",
            },
            "daily_budget",
        ),
        (
            {
                "name_ja": "ジム",
                "name_en": "Gym",
                "programme_ids": str(THANKS),
                "daily_budget": "10",
                "cap_per_issuance": "0",
            },
            "cap_per_issuance",
        ),
    ):
        r = _form(admin, URL, data)
        assert r.status_code == 400, (data, r.status_code)
        html = r.get_data(as_text=True)
        assert 'data-testid="services-error"' in html and 'aria-invalid="true"' in html, field
        assert "fur_" not in html
    assert state(app) == before


def test_rotate_then_revoke_on_the_page(app, world, admins):
    svc = make_service(app, world.town_id)
    admin = world.api(ADMIN_EMAIL)
    r = _form(admin, f"{URL}/{svc.id}/rotate")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    new = KEY.search(r.get_data(as_text=True)).group(1)
    assert _authenticates(app, new) and _authenticates(app, svc.key)
    # A third key waits for a revoke: refused on the page, nothing written.
    before = state(app)
    again = _form(admin, f"{URL}/{svc.id}/rotate")
    assert again.status_code == 409 and "fur_" not in again.get_data(as_text=True).replace(
        f"fur_{svc.key.split('_')[1]}_…", ""
    ).replace(f"fur_{new.split('_')[1]}_…", "")
    assert state(app) == before
    with app.app_context():
        old = get_db().session.scalar(
            sa.select(ServiceApiKey).where(ServiceApiKey.prefix == svc.key.split("_")[1])
        )
    r = _form(admin, f"{URL}/{svc.id}/keys/{old.id}/revoke")
    assert r.status_code == 303 and r.headers["Location"].endswith("notice=revoked")
    assert not _authenticates(app, svc.key) and _authenticates(app, new)


def test_wrong_people_are_refused(app, world, admins):
    svc = make_service(app, world.town_id)
    before = state(app)
    for email in (world.staff, OTHER_ADMIN, world.customer):
        who = world.api(email)
        assert who.get(URL).status_code == 403, email
        assert who.get(f"{URL}/{svc.id}").status_code == 403, email
        assert _form(who, f"{URL}/{svc.id}/rotate").status_code == 403, email
        assert _form(who, f"{URL}/{svc.id}/keys/1/revoke").status_code == 403, email
        r = _form(
            who, URL, {"name_ja": "x", "name_en": "x", "programme_ids": "3", "daily_budget": "5"}
        )
        assert r.status_code == 403, email
    # The other town's admin on their own town's URL does not reach this service.
    other = world.api(OTHER_ADMIN)
    assert other.get(f"/towns/toyako/admin/services/{svc.id}").status_code == 404
    assert _form(other, f"/towns/toyako/admin/services/{svc.id}/rotate").status_code == 404
    # Nobody signed in: the sign-in page.
    anon = world.app.test_client()
    assert anon.get(URL).status_code == 302
    assert state(app) == before
    assert _authenticates(app, svc.key)


def test_admin_changes_the_limits_and_suspends_the_service(app, world, admins):
    svc = make_service(app, world.town_id, daily=1000, cap=100)
    admin = world.api(ADMIN_EMAIL)
    page = admin.get(f"{URL}/{svc.id}").get_data(as_text=True)
    assert 'value="1000"' in page and 'data-testid="edit-form"' in page
    fields = {
        "name_ja": "相乗り",
        "name_en": "Car share",
        "programme_ids": str(THANKS),
        "daily_budget": "50",
        "monthly_budget": "",
        "cap_per_issuance": "",
        "active": "1",
    }
    r = _form(admin, f"{URL}/{svc.id}", fields)
    assert r.status_code == 303 and r.headers["Location"].endswith("notice=saved")
    web = app.test_client()
    auth = {"Authorization": f"Bearer {svc.key}"}
    me = web.get("/api/v1/service", headers=auth).get_json()
    assert (me["daily_budget"], me["cap_per_issuance"], me["name_ja"]) == (50, None, "相乗り")
    body = {
        "recipient": "customer@example.com",
        "amount": 51,
        "programme": THANKS,
        "reason": "Ride",
        "idempotency_key": "ride-0001",
    }
    r = web.post("/api/v1/issuances", json=body, headers=auth)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "budget_exceeded"
    # Bad input: 400 on the page, nothing changed.
    before = state(app)
    bad = _form(admin, f"{URL}/{svc.id}", {**fields, "daily_budget": "0"})
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.get_data(as_text=True)
    assert state(app) == before
    # Suspended: its key answers 401 until it is active again; both changes are audited.
    r = _form(admin, f"{URL}/{svc.id}", {k: v for k, v in fields.items() if k != "active"})
    assert r.status_code == 303
    assert web.get("/api/v1/service", headers=auth).status_code == 401
    assert 'data-testid="suspended"' in admin.get(f"{URL}/{svc.id}").get_data(as_text=True)
    assert _form(admin, f"{URL}/{svc.id}", fields).status_code == 303
    assert web.get("/api/v1/service", headers=auth).status_code == 200
    with app.app_context():
        from backend.core.models import AuditLog

        rows = (
            get_db()
            .session.scalars(
                sa.select(AuditLog)
                .where(AuditLog.action == "services.update")
                .order_by(AuditLog.id)
            )
            .all()
        )
        assert [r.details["after"]["active"] for r in rows] == [True, False, True]
        assert rows[0].details["before"]["daily_budget"] == 1000
        assert rows[0].details["after"]["daily_budget"] == 50
    # Staff cannot change it.
    staff = world.api(world.staff)
    assert _form(staff, f"{URL}/{svc.id}", fields).status_code == 403
