"""The console's People page and /api/towns/<slug>/people (issue 13): the town's admin appoints
and removes staff, venue staff, data staff, admins and shop staff by e-mail, each change with one
audit row; anyone else is refused with nothing changed; an unknown e-mail, a bad role and a bad
key are 4xx with the message in the page; the last admin stays; a double submit acts once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.roles import ADMIN, DATA, STAFF, VERIFIER
from tests.console.conftest import audit_rows, form, memberships, shop_staff, state
from tests.merchants.conftest import assert_error

PEOPLE = "/towns/sarabetsu/admin/people"
API = "/api/towns/sarabetsu/people"


@pytest.mark.parametrize("role", [STAFF, VERIFIER, DATA, ADMIN])
def test_admin_appoints_and_removes_by_email_with_audit_rows(app, town, role):
    admin = town.api("admin")
    newbie = town.user_id("newbie")
    resp = form(
        admin, f"{PEOPLE}/appoint", {"email": " NEWBIE@example.com ", "role": role, "key": "k1"}
    )
    assert resp.status_code == 303 and resp.location.endswith("notice=appointed")
    assert (newbie, town.town_id, role) in memberships(app)
    grant = audit_rows(app, "town.role")[-1]
    assert grant == {
        "actor": f"user:{town.user_id('admin')}",
        "action": "town.role.grant",
        "subject": f"user:{newbie}",
        "town_id": town.town_id,
        "details": {
            "role": role,
            "town_id": town.town_id,
            "town": "sarabetsu",
            "email": "newbie@example.com",
            "key": "k1",
        },
    }
    page = admin.client.get(PEOPLE, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "newbie@example.com" in page

    resp = form(
        admin, f"{PEOPLE}/remove", {"email": "newbie@example.com", "role": role, "key": "k2"}
    )
    assert resp.status_code == 303 and resp.location.endswith("notice=removed")
    assert (newbie, town.town_id, role) not in memberships(app)
    revoke = audit_rows(app, "town.role")[-1]
    assert revoke["action"] == "town.role.revoke" and revoke["details"]["role"] == role
    assert revoke["town_id"] == town.town_id and revoke["subject"] == f"user:{newbie}"


@pytest.mark.parametrize("who", ["staff", "data", "verifier", "other_admin", "customer", "clerk"])
def test_anyone_but_the_towns_admin_is_refused_and_nothing_changes(app, town, who):
    before = state(app)
    api = town.api(who)
    for url, data in (
        (f"{PEOPLE}/appoint", {"email": "newbie@example.com", "role": STAFF}),
        (f"{PEOPLE}/remove", {"email": "staff@example.com", "role": STAFF}),
        (f"{PEOPLE}/appoint", {"email": "newbie@example.com", "role": ADMIN}),
    ):
        assert form(api, url, {**data, "key": "x"}).status_code == 403, (who, url)
    assert_error(api.post(API, {"email": "newbie@example.com", "role": STAFF}), 403, "forbidden")
    assert_error(api.post(f"{API}/remove", {"email": "admin@example.com", "role": ADMIN}), 403)
    assert state(app) == before


def test_shop_staff_can_be_changed_only_by_town_staff_or_admin(app, town):
    before = state(app)
    for who in ("other_admin", "customer", "clerk", "data", "verifier"):
        api = town.api(who)
        url = f"{PEOPLE}/shops/{town.merchant_id}/appoint"
        assert form(api, url, {"email": "newbie@example.com"}).status_code == 403, who
        url = f"{PEOPLE}/shops/{town.merchant_id}/remove"
        assert form(api, url, {"email": "clerk@example.com"}).status_code == 403, who
    assert state(app) == before


def test_admin_appoints_and_removes_shop_staff_through_the_merchants_service(app, town):
    admin = town.api("admin")
    newbie = town.user_id("newbie")
    url = f"{PEOPLE}/shops/{town.merchant_id}/appoint"
    assert form(admin, url, {"email": "newbie@example.com", "key": "s1"}).status_code == 303
    assert form(admin, url, {"email": "newbie@example.com", "key": "s1"}).status_code == 303
    assert (town.merchant_id, newbie) in shop_staff(app)
    adds = [a for a in audit_rows(app, "merchant.staff_add") if a["details"]["user_id"] == newbie]
    assert len(adds) == 1 and adds[0]["town_id"] == town.town_id
    url = f"{PEOPLE}/shops/{town.merchant_id}/remove"
    assert form(admin, url, {"email": "newbie@example.com"}).status_code == 303
    assert form(admin, url, {"email": "newbie@example.com"}).status_code == 303  # a repeat
    assert (town.merchant_id, newbie) not in shop_staff(app)
    removed = audit_rows(app, "merchant.staff_remove")
    assert len(removed) == 1 and removed[0]["town_id"] == town.town_id
    # Another town's shop is not reachable through this town's page.
    assert (
        form(admin, f"{PEOPLE}/shops/999999/appoint", {"email": "x@example.com"}).status_code == 404
    )


def test_unknown_email_bad_role_and_bad_key_are_4xx_in_the_page_with_nothing_written(app, town):
    admin = town.api("admin")
    before = state(app)
    resp = form(
        admin, f"{PEOPLE}/appoint", {"email": "nobody@example.com", "role": STAFF}, lang="ja"
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 404 and "このメールアドレスのアカウントはありません" in html
    assert 'value="nobody@example.com"' in html and 'aria-invalid="true"' in html
    resp = form(
        admin, f"{PEOPLE}/appoint", {"email": "nobody@example.com", "role": STAFF}, lang="en"
    )
    assert "There is no account with this email address" in resp.get_data(as_text=True)
    resp = form(admin, f"{PEOPLE}/appoint", {"email": "not-an-email", "role": STAFF}, lang="en")
    assert resp.status_code == 400 and "Enter a valid email address" in resp.get_data(as_text=True)
    resp = form(admin, f"{PEOPLE}/appoint", {"email": "newbie@example.com", "role": "mayor"})
    assert resp.status_code == 400
    resp = form(
        admin, f"{PEOPLE}/appoint", {"email": "newbie@example.com", "role": STAFF, "key": "k" * 65}
    )
    assert resp.status_code == 400
    url = f"{PEOPLE}/shops/{town.merchant_id}/appoint"
    assert form(admin, url, {"email": "nobody@example.com"}).status_code == 400
    assert_error(admin.post(API, {"email": "nobody@example.com", "role": STAFF}), 404)
    assert_error(admin.post(API, {"email": "newbie@example.com", "role": "root"}), 400)
    assert_error(admin.post(API, ["not", "an", "object"]), 400)
    assert state(app) == before


def test_the_last_admin_cannot_be_removed(app, town):
    admin = town.api("admin")
    before = state(app)
    resp = form(admin, f"{PEOPLE}/remove", {"email": "admin@example.com", "role": ADMIN}, lang="en")
    assert resp.status_code == 409 and "at least one admin" in resp.get_data(as_text=True)
    assert_error(
        admin.post(f"{API}/remove", {"email": "admin@example.com", "role": ADMIN}),
        409,
        "last_admin",
    )
    assert state(app) == before
    # With a second admin, the first may step down; then the second is the last one.
    assert admin.post(API, {"email": "staff@example.com", "role": ADMIN}).status_code == 201
    resp = admin.post(f"{API}/remove", {"email": "admin@example.com", "role": ADMIN})
    assert resp.status_code == 200 and resp.get_json()["change"]["changed"] is True
    second = town.api("staff")
    assert_error(second.post(f"{API}/remove", {"email": "staff@example.com", "role": ADMIN}), 409)
    # The one who stepped down is no longer an admin.
    assert_error(admin.post(API, {"email": "newbie@example.com", "role": STAFF}), 403)


def test_a_double_submit_has_one_effect(app, town):
    admin = town.api("admin")
    data = {"email": "newbie@example.com", "role": STAFF, "key": "same-key"}
    assert form(admin, f"{PEOPLE}/appoint", data).status_code == 303
    assert form(admin, f"{PEOPLE}/appoint", data).status_code == 303
    assert len(audit_rows(app, "town.role.grant")) == 1
    # Removed, then appointed again under a new key: a stale resubmit of the removal (its key
    # already used) does not undo the later appointment.
    gone = {"email": "newbie@example.com", "role": STAFF, "key": "remove-1"}
    assert form(admin, f"{PEOPLE}/remove", gone).status_code == 303
    again = {"email": "newbie@example.com", "role": STAFF, "key": "appoint-2"}
    assert form(admin, f"{PEOPLE}/appoint", again).status_code == 303
    assert form(admin, f"{PEOPLE}/remove", gone).status_code == 303
    assert (town.user_id("newbie"), town.town_id, STAFF) in memberships(app)
    assert [a["action"] for a in audit_rows(app, "town.role")] == [
        "town.role.grant",
        "town.role.revoke",
        "town.role.grant",
    ]
    # The API says whether anything changed.
    resp = admin.post(API, {"email": "newbie@example.com", "role": STAFF})
    assert resp.status_code == 200 and resp.get_json()["change"]["changed"] is False


def test_api_lists_people_per_role_for_staff_and_admin(app, town):
    body = town.api("staff").get(API).get_json()
    assert [p["email"] for p in body["roles"]["admin"]] == ["admin@example.com"]
    assert [p["email"] for p in body["roles"]["data"]] == ["data@example.com"]
    assert town.api("customer").get(API).status_code == 403
    assert town.api("other_admin").get(API).status_code == 403
    shops = town.api("admin").get(f"{API}/shops").get_json()["shops"]
    assert [s["email"] for s in shops[0]["staff"]] == ["clerk@example.com"]


def test_people_page_in_japanese_and_english(app, town):
    admin = town.api("admin")
    ja = admin.client.get(PEOPLE, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    for text in (
        "担当者",
        "町の管理者",
        "役場職員",
        "会場スタッフ",
        "データ担当",
        "店舗スタッフ",
        "任命する",
    ):
        assert text in ja, text
    en = admin.client.get(PEOPLE, headers={"Accept-Language": "en"}).get_data(as_text=True)
    for text in ("People", "Town admin", "Town staff", "Venue staff", "Data staff", "Shop staff"):
        assert text in en, text
    assert 'name="key"' in en and 'name="csrf_token"' in en
    # Staff see the lists without the forms; the last admin has no remove button.
    staff = town.api("staff").client.get(PEOPLE).get_data(as_text=True)
    assert "admin@example.com" in staff and 'data-testid="appoint-form"' not in staff
    assert "/admin/people/remove" not in staff
    assert town.api("customer").client.get(PEOPLE).status_code == 403


def test_signed_out_visitor_is_sent_to_log_in(client, town):
    resp = client.get(PEOPLE)
    assert resp.status_code == 302 and "/login?next=" in resp.location


def test_an_address_nobody_has_confirmed_cannot_be_given_a_role(app, town):
    """Anyone can sign up with the address of the colleague the admin means to appoint, before
    they do, and never confirm it. Appointing "by e-mail" must mean the owner of that mailbox:
    an account whose address is unconfirmed gets no role (a 4xx, nothing written) until the
    address is confirmed."""
    from backend.accounts.models import User
    from backend.accounts.services import AccountService
    from backend.chain.api import get_vault
    from backend.core.db import get_db
    from tests.merchants.conftest import PASSWORD

    with app.app_context():
        AccountService(get_db().session(), lambda: get_vault(app)).signup(
            "colleague@town.example", PASSWORD
        )
    admin = town.api("admin")
    before = state(app)
    resp = form(
        admin, f"{PEOPLE}/appoint", {"email": "colleague@town.example", "role": STAFF}, lang="en"
    )
    assert 400 <= resp.status_code < 500
    assert "confirm" in resp.get_data(as_text=True)
    assert_error(admin.post(API, {"email": "colleague@town.example", "role": ADMIN}), 409)
    assert state(app) == before

    with app.app_context():
        s = get_db().session
        user = s.scalar(sa.select(User).where(User.email == "colleague@town.example"))
        user.email_verified_at = user.created_at
        s.commit()
    assert admin.post(API, {"email": "colleague@town.example", "role": STAFF}).status_code == 201
