"""Town staff's pages: register a shop (processing until the chain confirms it), add a staff
member by email, issue a printed card whose PIN is shown once and stored hashed. Non-staff get
403; bad input shows a translated message in the page and changes nothing."""

from __future__ import annotations

import re

import sqlalchemy as sa
from werkzeug.security import check_password_hash

from backend.accounts.services import AccountService
from backend.chain.api import get_vault
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import CardPinFailures, Merchant, MerchantStaff, ResidentCard
from backend.notifications.models import Notification
from tests.merchants.conftest import assert_error, run_chain, snapshot


def _form(api, url: str, data: dict[str, str], lang: str | None = None):
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    headers = {"Accept-Language": lang} if lang else {}
    return api.client.post(url, data={"csrf_token": api.token, **data}, headers=headers)


def _staff_rows(app) -> list[tuple[int, int]]:
    with app.app_context():
        rows = get_db().session.execute(sa.select(MerchantStaff.merchant_id, MerchantStaff.user_id))
        return sorted(tuple(r) for r in rows)


def _last_audit(app) -> AuditLog:
    with app.app_context():
        row = get_db().session.scalars(sa.select(AuditLog).order_by(AuditLog.id.desc())).first()
        get_db().session.expunge(row)
        return row


def test_settlement_queue_links_the_staff_pages(app, world):
    page = world.api(world.staff).get("/towns/sarabetsu/settlements").get_data(as_text=True)
    assert 'href="/towns/sarabetsu/shops"' in page and 'href="/towns/sarabetsu/cards"' in page


def test_staff_register_a_shop_processing_until_the_chain_confirms(app, world, w3):
    staff = world.api(world.staff)
    page = staff.get("/towns/sarabetsu/shops")
    assert page.status_code == 200 and "直売所" in page.get_data(as_text=True)
    resp = _form(staff, "/towns/sarabetsu/shops", {"name_ja": "パン屋", "name_en": "Bakery"})
    assert resp.status_code == 302 and resp.location.endswith("notice=registered")
    with app.app_context():
        m = get_db().session.scalar(sa.select(Merchant).where(Merchant.name_en == "Bakery"))
        assert m.status == "registering" and m.registered_by == world.user(world.staff).id
        merchant_id = m.id
    html = staff.client.get("/towns/sarabetsu/shops", headers={"Accept-Language": "en"})
    html = html.get_data(as_text=True)
    assert "Processing" in html and "Bakery" in html
    assert _last_audit(app).action == "merchant.register"
    run_chain(app, w3)
    listed = staff.get("/api/towns/sarabetsu/merchants").get_json()["merchants"]
    assert {"id": merchant_id, "status": "active"}.items() <= next(
        m for m in listed if m["id"] == merchant_id
    ).items()


def test_staff_add_a_shop_member_by_email(app, world):
    staff = world.api(world.staff)
    url = f"/towns/sarabetsu/shops/{world.merchant_id}/staff"
    resp = _form(staff, url, {"email": "  Neighbour@Example.com "})
    assert resp.status_code == 302 and resp.location.endswith("notice=staff_added")
    neighbour = world.api(world.neighbour)
    assert "直売所" in neighbour.get("/merchants").get_data(as_text=True)
    assert neighbour.get(f"/merchants/{world.merchant_id}").status_code == 200
    audit = _last_audit(app)
    assert audit.action == "merchant.staff_add" and audit.actor.startswith("user:")
    # Adding them again changes nothing.
    before = (_staff_rows(app), snapshot(app))
    assert _form(staff, url, {"email": world.neighbour}).status_code == 302
    assert (_staff_rows(app), snapshot(app)) == before


def test_staff_issue_a_printed_card_with_a_pin_shown_once(app, world):
    staff = world.api(world.staff)
    assert staff.get("/towns/sarabetsu/cards").status_code == 200
    resp = _form(staff, "/towns/sarabetsu/cards", {"email": world.customer})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    code = re.search(r'data-testid="card-code">(C[A-Z0-9]+)<', html).group(1)
    pin = re.search(r'data-testid="card-pin">(\d{6})<', html).group(1)
    with app.app_context():
        card = get_db().session.scalar(sa.select(ResidentCard))
        assert card.card_code == code and card.user_id == world.user(world.customer).id
        assert pin not in card.pin_hash and check_password_hash(card.pin_hash, pin)
        staff_id = world.user(world.staff).id
    audit = _last_audit(app)
    assert audit.action == "card.issue" and audit.actor == f"user:{staff_id}"
    assert audit.details["issued_by"] == staff_id and pin not in str(audit.details)
    # The PIN is never shown again.
    assert pin not in staff.get("/towns/sarabetsu/cards").get_data(as_text=True)


def test_non_staff_get_403_and_change_nothing(app, world):
    before = (_staff_rows(app), snapshot(app))
    for email in (world.clerk, world.customer, world.other_staff):
        api = world.api(email)
        for url in ("/towns/sarabetsu/shops", "/towns/sarabetsu/cards"):
            assert api.get(url).status_code == 403, (email, url)
        shop = {"name_ja": "店", "name_en": "S"}
        assert _form(api, "/towns/sarabetsu/shops", shop).status_code == 403
        url = f"/towns/sarabetsu/shops/{world.merchant_id}/staff"
        assert _form(api, url, {"email": world.neighbour}).status_code == 403
        assert _form(api, "/towns/sarabetsu/cards", {"email": world.customer}).status_code == 403
        assert api.get("/api/towns/sarabetsu/merchants").status_code == 403
    # Signed out: the log-in page.
    anon = app.test_client()
    assert "/login" in anon.get("/towns/sarabetsu/shops").location
    assert "/login" in anon.get("/towns/sarabetsu/cards").location
    assert (_staff_rows(app), snapshot(app)) == before


def test_bad_input_shows_a_translated_message_and_changes_nothing(app, world):
    staff = world.api(world.staff)
    before = (_staff_rows(app), snapshot(app))
    resp = _form(staff, "/towns/sarabetsu/shops", {"name_ja": "", "name_en": "Bakery"}, lang="ja")
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'role="alert"' in html and 'value="Bakery"' in html
    resp = _form(staff, "/towns/sarabetsu/shops", {"name_ja": "店", "name_en": "x" * 121})
    assert resp.status_code == 400 and "120" in resp.get_data(as_text=True)
    url = f"/towns/sarabetsu/shops/{world.merchant_id}/staff"
    resp = _form(staff, url, {"email": "nobody@example.com"}, lang="ja")
    assert resp.status_code == 400
    assert "このメールアドレスのアカウントはありません" in resp.get_data(as_text=True)
    resp = _form(staff, url, {"email": "not an email"}, lang="en")
    assert resp.status_code == 400 and "valid email" in resp.get_data(as_text=True)
    # A shop of another town cannot be reached through this town's page.
    other = f"/towns/sarabetsu/shops/{world.other_merchant_id}/staff"
    assert _form(staff, other, {"email": world.neighbour}).status_code == 404
    resp = _form(staff, "/towns/sarabetsu/cards", {"email": "nobody@example.com"}, lang="ja")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "このメールアドレスのアカウントはありません" in html
    assert 'data-testid="card-pin"' not in resp.get_data(as_text=True)
    assert (_staff_rows(app), snapshot(app)) == before


def test_an_account_nobody_confirmed_is_not_made_shop_staff(app, world):
    """Anyone can sign up with an address before its owner does; shop staff take the shop's
    payments, so the address must be confirmed first. Nothing is written; a clear message."""
    with app.app_context():
        AccountService(get_db().session(), lambda: get_vault(app)).signup(
            "new-clerk@example.com", "correct horse battery 9"
        )
    staff = world.api(world.staff)
    before = (_staff_rows(app), snapshot(app))
    url = f"/towns/sarabetsu/shops/{world.merchant_id}/staff"
    resp = _form(staff, url, {"email": "new-clerk@example.com"}, lang="ja")
    assert resp.status_code == 409
    assert "まだアドレスを確認していません" in resp.get_data(as_text=True)
    api = f"/api/towns/sarabetsu/people/shops/{world.merchant_id}"
    assert_error(staff.post(api, {"email": "new-clerk@example.com"}), 409, "unconfirmed_account")
    assert (_staff_rows(app), snapshot(app)) == before


def test_the_holder_is_told_of_a_card_issued_or_replaced_in_their_name(app, world):
    """Staff issue cards by e-mail address and see the PIN: the holder is told (in the app, and
    a mail is due to their confirmed address), so a card they did not ask for shows. A card
    replaced through the same form starts with no wrong PINs counted at any shop."""
    staff, customer = world.api(world.staff), world.api(world.customer)
    assert customer.get("/api/me/notifications").get_json()["notifications"] == []
    resp = _form(staff, "/towns/sarabetsu/cards", {"email": world.customer})
    assert resp.status_code == 200
    (told,) = customer.get("/api/me/notifications").get_json()["notifications"]
    assert told["kind"] == "card_issued" and "sarabetsu" in told["body"].lower()
    with app.app_context():
        s = get_db().session
        row = s.scalar(sa.select(Notification).where(Notification.kind == "card_issued"))
        assert row.user_id == world.user(world.customer).id and row.email_state == "pending"
        card = s.scalar(sa.select(ResidentCard))
        s.add(CardPinFailures(card_id=card.id, merchant_id=world.merchant_id, failures=4))
        s.commit()

    # Lost: replaced through the same form. Told again; the old wrong PINs no longer count.
    resp = _form(staff, "/towns/sarabetsu/cards", {"email": world.customer, "replace": "1"})
    assert resp.status_code == 200
    kinds = [n["kind"] for n in customer.get("/api/me/notifications").get_json()["notifications"]]
    assert kinds == ["card_issued", "card_issued"]
    with app.app_context():
        failures = get_db().session.scalar(sa.select(CardPinFailures.failures))
        assert failures == 0
    # Nobody else is told.
    assert world.api(world.neighbour).get("/api/me/notifications").get_json()["notifications"] == []
