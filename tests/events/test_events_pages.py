"""The events pages without the chain (the outbox rows are only counted): town staff create
events in the console, the public page lists the town's and its partner towns' upcoming events,
a person checks in with the QR's link or venue staff check them in by their code, once; every
refusal (a guessed link, outside the window, someone who is not staff, bad input) is a clear
4xx that changes nothing."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.events.models import Event, EventCheckIn
from backend.merchants.services import merchant_service
from backend.partners.models import Partnership
from tests.events.conftest import check_in_token, counts, event_form, form, grants, make_event

ADMIN = "/towns/sarabetsu/admin/events"


def _event_id(resp) -> int:
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return int(re.search(r"/admin/events/(\d+)", resp.headers["Location"]).group(1))


def _customer_code(app, town, who: str = "customer") -> str:
    with app.app_context():
        from backend.accounts.models import User

        user = get_db().session.get(User, town.user_id(who))
        code, _expires = merchant_service().issue_customer_code(user)
        return code


def _check_in(api, event_id: int, token: str, lang: str | None = None):
    return form(api, f"/towns/sarabetsu/events/{event_id}/check-in", {"t": token}, lang)


def test_staff_create_an_event_and_the_public_page_lists_it(app, town):
    staff = town.api("staff")
    resp = form(staff, ADMIN, event_form(key="create-key-1"))
    event_id = _event_id(resp)
    again = form(staff, ADMIN, event_form(key="create-key-1"))  # a double submit: one event
    assert _event_id(again) == event_id
    assert counts(app)["events"] == 1
    page = staff.get(f"{ADMIN}/{event_id}").get_data(as_text=True)
    assert "River clean-up" in page or "川の清掃" in page
    assert 'id="attendee-code"' in page and 'name="code"' in page  # the scanner's field
    qr = staff.get(f"{ADMIN}/{event_id}/qr").get_data(as_text=True)
    token = check_in_token(app, town.town_id, event_id)
    assert f"/towns/sarabetsu/events/{event_id}/check-in?t={token}" in qr and "<svg" in qr
    public = app.test_client().get("/towns/sarabetsu/events", headers={"Accept-Language": "ja"})
    body = public.get_data(as_text=True)
    assert (
        public.status_code == 200 and "川の清掃" in body and "（日本時間）" in body
    )  # Japan time, labelled
    assert token not in body  # the public page never shows the check-in link
    with app.app_context():
        (row,) = get_db().session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "event.create")
        )
        assert row.actor == f"user:{town.user_id('staff')}" and row.town_id == town.town_id


def test_only_the_towns_staff_create_and_edit_events(app, town):
    before = counts(app)
    for who in ("customer", "verifier", "clerk", "other_admin"):
        resp = form(town.api(who), ADMIN, event_form(key=f"create-by-{who}"))
        assert resp.status_code == 403, (who, resp.status_code)
    assert counts(app) == before
    event_id = make_event(app, town.town_id)
    before = counts(app)
    for who in ("customer", "verifier"):
        api = town.api(who)
        assert form(api, f"{ADMIN}/{event_id}/edit", event_form()).status_code == 403
        assert form(api, f"{ADMIN}/{event_id}/cancel", {}).status_code == 403
        assert form(api, f"{ADMIN}/{event_id}/qr", {}).status_code == 403
    # Another town's admin: the event is not theirs (404 on their town's console path).
    other = town.api("other_admin")
    assert other.get(f"/towns/toyako/admin/events/{event_id}").status_code == 404
    assert counts(app) == before


def test_bad_input_is_refused_and_changes_nothing(app, town):
    staff = town.api("staff")
    before = counts(app)
    bad = [
        event_form(points=0),
        event_form(points=-5),
        event_form(points=2**64),
        event_form(points="1e3"),
        event_form(start=dt.timedelta(hours=3), end=dt.timedelta(hours=2)),  # ends before it starts
        event_form(start=-dt.timedelta(hours=3), end=-dt.timedelta(hours=1)),  # in the past
        event_form(starts_at="tomorrow"),
        event_form(starts_at="0001-01-01T00:00"),  # before year 1 in UTC: no 500
        event_form(ends_at="9999-12-31T23:59"),
        event_form(name_ja=""),
        event_form(name_en="x" * 121),
        event_form(programme_id=3),  # thank-you points are not an event prize programme
        event_form(programme_id=99),
    ]
    for i, data in enumerate(bad):
        resp = form(staff, ADMIN, {**data, "key": f"bad-input-{i:02d}"})
        assert resp.status_code == 400, (data, resp.status_code)
        assert 'role="alert"' in resp.get_data(as_text=True)
    assert counts(app) == before


def test_check_in_with_the_qr_then_by_staff_gives_points_once(app, town):
    event_id = make_event(app, town.town_id, points=250)
    token = check_in_token(app, town.town_id, event_id)
    customer = town.api("customer")
    page = customer.get(f"/towns/sarabetsu/events/{event_id}/check-in?t={token}")
    assert page.status_code == 200 and 'data-testid="check-in-form"' in page.get_data(as_text=True)
    resp = _check_in(customer, event_id, token)
    assert resp.status_code == 303
    done = customer.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'data-points-state="pending"' in done and 'http-equiv="refresh"' in done
    after_first = counts(app)
    # Venue staff scan the same person's code: refused, nothing more.
    verifier = town.api("verifier")
    code = _customer_code(app, town)
    resp = form(verifier, f"{ADMIN}/{event_id}/check-in", {"code": code})
    assert resp.status_code == 409
    assert "チェックイン済み" in resp.get_data(as_text=True)  # Japanese first
    # The QR again: 409 too; and opening the link says they already checked in.
    assert _check_in(customer, event_id, token).status_code == 409
    again = customer.get(f"/towns/sarabetsu/events/{event_id}/check-in?t={token}")
    assert 'data-testid="already-checked-in"' in again.get_data(as_text=True)
    assert counts(app) == after_first
    (grant,) = grants(app)
    assert grant == {
        "user_id": town.user_id("customer"),
        "key": f"event:{event_id}",
        "amount": 250,
        "pid": 4,
    }
    with app.app_context():
        (audit,) = get_db().session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "points.issue")
        )
        assert audit.actor == f"user:{town.user_id('customer')}"
        assert audit.details["event_id"] == event_id and audit.details["method"] == "self"
        assert int(audit.amount) == 250 and audit.town_id == town.town_id


def test_venue_staff_check_someone_in_by_code_and_see_them_listed(app, town):
    event_id = make_event(app, town.town_id, points=120)
    verifier = town.api("verifier")
    code = _customer_code(app, town, "newbie")
    resp = form(verifier, f"{ADMIN}/{event_id}/check-in", {"code": code.lower()})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    page = verifier.get(resp.headers["Location"]).get_data(as_text=True)
    assert "newbie@example.com" in page and 'data-points-state="pending"' in page
    with app.app_context():
        (row,) = get_db().session.scalars(sa.select(EventCheckIn))
        assert (row.user_id, row.method, row.staff_user_id) == (
            town.user_id("newbie"),
            "staff",
            town.user_id("verifier"),
        )
        (audit,) = get_db().session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "points.issue")
        )
        assert audit.actor == f"user:{town.user_id('verifier')}"
    # The same person's newer code: already checked in.
    code = _customer_code(app, town, "newbie")
    assert form(verifier, f"{ADMIN}/{event_id}/check-in", {"code": code}).status_code == 409
    assert len(grants(app)) == 1


def test_someone_who_is_not_staff_cannot_check_others_in(app, town):
    event_id = make_event(app, town.town_id)
    code = _customer_code(app, town, "newbie")
    before = counts(app)
    for who in ("customer", "clerk", "other_admin"):
        resp = form(town.api(who), f"{ADMIN}/{event_id}/check-in", {"code": code})
        assert resp.status_code == 403, (who, resp.status_code)
    assert counts(app) == before


def test_a_bad_code_is_refused(app, town):
    event_id = make_event(app, town.town_id)
    verifier = town.api("verifier")
    before = counts(app)
    for code in ("", "P123", "P000000000000", "CZZZZZZZZZZ", "x" * 500, "nobody@example.com"):
        resp = form(verifier, f"{ADMIN}/{event_id}/check-in", {"code": code})
        assert resp.status_code == 400, (code, resp.status_code)
        assert 'data-testid="check-in-error"' in resp.get_data(as_text=True)
    assert counts(app) == before


def test_a_wrong_or_old_token_is_refused(app, town):
    event_id = make_event(app, town.town_id)
    other_id = make_event(app, town.town_id, name_en="Other")
    customer = town.api("customer")
    before = counts(app)
    old = check_in_token(app, town.town_id, event_id)
    for token in ("", "guess", check_in_token(app, town.town_id, other_id), old + "x"):
        assert _check_in(customer, event_id, token).status_code == 403
        get = customer.get(f"/towns/sarabetsu/events/{event_id}/check-in?t={token}")
        assert get.status_code == 403
    assert counts(app) == before
    # Staff renew the QR: the old link stops working, the new one works.
    staff = town.api("staff")
    assert form(staff, f"{ADMIN}/{event_id}/qr", {}).status_code == 303
    assert _check_in(customer, event_id, old).status_code == 403
    new = check_in_token(app, town.town_id, event_id)
    assert new != old and _check_in(customer, event_id, new).status_code == 303


def test_outside_the_window_nothing_happens(app, town):
    soon = make_event(app, town.town_id, start=dt.timedelta(hours=1), end=dt.timedelta(hours=3))
    ended = make_event(
        app, town.town_id, start=-dt.timedelta(hours=3), end=-dt.timedelta(seconds=1)
    )
    cancelled = make_event(app, town.town_id, status="cancelled", name_en="Cancelled")
    customer = town.api("customer")
    verifier = town.api("verifier")
    before = counts(app)
    for event_id, words in ((soon, "opens"), (ended, "ended"), (cancelled, "cancelled")):
        token = check_in_token(app, town.town_id, event_id)
        resp = _check_in(customer, event_id, token, lang="en")
        assert resp.status_code == 409, resp.status_code
        body = resp.get_data(as_text=True)
        assert words in body and "JST" in body or words == "cancelled", body
        page = customer.get(f"/towns/sarabetsu/events/{event_id}/check-in?t={token}")
        assert 'data-testid="check-in-closed"' in page.get_data(as_text=True)
        code = _customer_code(app, town)
        assert form(verifier, f"{ADMIN}/{event_id}/check-in", {"code": code}).status_code == 409
    assert counts(app) == before


def test_the_check_in_link_asks_to_sign_in_first(app, town):
    event_id = make_event(app, town.town_id)
    token = check_in_token(app, town.town_id, event_id)
    anon = app.test_client()
    resp = anon.get(f"/towns/sarabetsu/events/{event_id}/check-in?t={token}")
    assert resp.status_code == 302 and "/login?next=" in resp.headers["Location"]
    assert token in resp.headers["Location"]


def test_points_and_programme_are_fixed_once_someone_checked_in(app, town):
    staff = town.api("staff")
    event_id = _event_id(form(staff, ADMIN, event_form(key="locked-event-1")))
    renamed = event_form(name_en="River clean-up (morning)")
    assert form(staff, f"{ADMIN}/{event_id}/edit", renamed).status_code == 303
    token = check_in_token(app, town.town_id, event_id)
    assert _check_in(town.api("customer"), event_id, token).status_code == 303
    before = counts(app)
    resp = form(staff, f"{ADMIN}/{event_id}/edit", event_form(points=999))
    assert resp.status_code == 409
    assert counts(app) == before
    with app.app_context():
        ev = get_db().session.get(Event, event_id)
        assert (ev.points, ev.name_en) == (300, "River clean-up (morning)")
    assert form(staff, f"{ADMIN}/{event_id}/cancel", {}).status_code == 303
    assert _check_in(town.api("newbie"), event_id, token).status_code == 409


def test_the_public_page_lists_partner_town_events(app, town):
    own = make_event(app, town.town_id, name_en="Sarabetsu harvest fair")
    partner = make_event(app, town.other_town_id, name_en="Toyako fireworks")
    make_event(app, town.other_town_id, name_en="Toyako cancelled", status="cancelled")
    make_event(
        app,
        town.town_id,
        name_en="Sarabetsu past",
        start=-dt.timedelta(days=2),
        end=-dt.timedelta(days=1),
    )
    anon = app.test_client()
    en = {"Accept-Language": "en"}
    body = anon.get("/towns/sarabetsu/events", headers=en).get_data(as_text=True)
    assert "Sarabetsu harvest fair" in body and "Toyako fireworks" not in body  # not partners yet
    with app.app_context():
        a, b = sorted((town.town_id, town.other_town_id))
        get_db().session.add(Partnership(town_a_id=a, town_b_id=b, status="active"))
        get_db().session.commit()
    body = anon.get("/towns/sarabetsu/events", headers=en).get_data(as_text=True)
    assert "Sarabetsu harvest fair" in body and "Toyako fireworks" in body
    assert "Toyako cancelled" not in body and "Sarabetsu past" not in body
    assert f'/towns/toyako/events/{partner}"' in body and f"/towns/sarabetsu/events/{own}" in body
    other = anon.get("/towns/toyako/events", headers=en).get_data(as_text=True)
    assert "Sarabetsu harvest fair" in other and "Toyako fireworks" in other
    assert anon.get(f"/towns/toyako/events/{partner}").status_code == 200
    assert anon.get(f"/towns/sarabetsu/events/{partner}").status_code == 404  # not its town


def _programme_row(app, town_id: int, **values) -> None:
    """Set the town's event prize programme row (as staff would on the Programmes page)."""
    from backend.points.town_settings import TownSettingsService, town_programme
    from backend.regions.models import Town

    with app.app_context():
        s = get_db().session
        TownSettingsService(s).ensure_seeded(s.get(Town, town_id))
        row = town_programme(s, town_id, 4)
        for name, value in values.items():
            setattr(row, name, value)
        s.commit()


def test_the_programmes_daily_cap_and_active_flag_apply(app, town):
    event_id = make_event(app, town.town_id, points=300)
    token = check_in_token(app, town.town_id, event_id)
    customer = town.api("customer")
    _programme_row(app, town.town_id, cap_per_person_day=200)
    before = counts(app)
    resp = _check_in(customer, event_id, token, lang="en")
    assert resp.status_code == 409 and "200" in resp.get_data(as_text=True)
    _programme_row(app, town.town_id, cap_per_person_day=None, active=False)
    assert _check_in(customer, event_id, token).status_code == 409
    assert counts(app) == before  # neither check-in nor grant nor outbox row nor audit
    _programme_row(app, town.town_id, active=True, cap_per_town_day=300)
    assert _check_in(customer, event_id, token).status_code == 303  # the town's 300 today
    code = _customer_code(app, town, "newbie")
    resp = form(town.api("verifier"), f"{ADMIN}/{event_id}/check-in", {"code": code})
    assert resp.status_code == 409  # the town's cap is reached: nothing for the newbie today
    assert [g["user_id"] for g in grants(app)] == [town.user_id("customer")]
