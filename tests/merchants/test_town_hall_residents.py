"""Residents without a phone or an e-mail (issue 15 §1): town staff register them in person
(name only, ID seen, audit-logged), print their card (a PDF with the town, the QR of the code
and the code, never the PIN), reprint, replace, lock and unlock it, and print a balance slip."""

from __future__ import annotations

import io
import re
import threading
from decimal import Decimal

import pypdf
import pypdfium2
import sqlalchemy as sa
import zxingcpp

from backend.accounts.models import CUSTODIAL, Address, User
from backend.chain.indexer_models import TokenBalance
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.merchants.models import ResidentCard, TownHallRegistration
from tests.merchants.conftest import PASSWORD, assert_error, pay_by_card, snapshot


def _form(api, url: str, data: dict[str, str], lang: str = "ja"):
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(
        url, data={"csrf_token": api.token, **data}, headers={"Accept-Language": lang}
    )


def _register(api, key: str = "desk-key-0001", **extra: str):
    data = {"name": "山田 花子", "name_kana": "やまだ はなこ", "id_seen": "1", "request_key": key}
    data.update(extra)
    return _form(api, "/towns/sarabetsu/cards/residents", data)


def _issued(resp) -> tuple[int, str, str]:
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html
    code = re.search(r'data-testid="card-code">(C[A-Z0-9]+)<', html).group(1)
    pin = re.search(r'data-testid="card-pin">(\d{6})<', html).group(1)
    card_id = int(re.search(r"/cards/(\d+)/card\.pdf", html).group(1))
    return card_id, code, pin


def _pdf_text(body: bytes) -> str:
    return "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(body)).pages)


def _qr_payloads(body: bytes) -> list[str]:
    page = pypdfium2.PdfDocument(body)[0]
    image = page.render(scale=6).to_pil()
    return [r.text for r in zxingcpp.read_barcodes(image)]


def _counts(app) -> dict[str, int]:
    with app.app_context():
        s = get_db().session
        count = lambda m: s.scalar(sa.select(sa.func.count()).select_from(m))  # noqa: E731
        return {
            "users": count(User),
            "addresses": count(Address),
            "cards": count(ResidentCard),
            "registrations": count(TownHallRegistration),
            "audit": count(AuditLog),
        }


def test_staff_register_a_resident_with_a_name_only_and_the_audit_says_the_id_was_seen(app, world):
    resp = _register(world.api(world.staff), id_kind="my_number")
    card_id, code, pin = _issued(resp)
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    assert "山田 花子" in html and "登録しました" in html
    with app.app_context():
        s = get_db().session
        card = s.get(ResidentCard, card_id)
        user = s.get(User, card.user_id)
        assert user.email is None and user.password_hash is None
        assert user.display_name == "山田 花子"
        assert [a.kind for a in user.addresses] == [CUSTODIAL]
        assert card.card_code == code and pin not in card.pin_hash
        reg = s.scalar(
            sa.select(TownHallRegistration).where(TownHallRegistration.user_id == user.id)
        )
        assert (
            reg.id_seen is True and reg.id_kind == "my_number" and reg.name_kana == "やまだ はなこ"
        )
        audit = s.scalars(sa.select(AuditLog).where(AuditLog.action == "resident.create")).one()
        assert audit.actor == f"user:{world.user(world.staff).id}"
        assert audit.subject_id == str(user.id) and audit.town_id == world.town_id
        assert audit.details["id_seen"] is True and audit.details["id_kind"] == "my_number"
        assert pin not in str(audit.details)
    # The account can never sign in by password (it has none) nor be found by an e-mail.
    r = world.api(world.staff).post("/api/auth/login", {"email": "", "password": PASSWORD})
    assert r.status_code in (400, 401)


def test_refused_without_the_id_checkbox_or_a_name_and_nothing_is_written(app, world):
    staff = world.api(world.staff)
    before, snap = _counts(app), snapshot(app)
    resp = _register(staff, id_seen="")
    assert resp.status_code == 400
    assert "身分証" in resp.get_data(
        as_text=True
    ) and 'data-testid="card-pin"' not in resp.get_data(as_text=True)
    resp = _register(staff, key="desk-key-0002", name="   ")
    assert resp.status_code == 400
    resp = _register(staff, key="desk-key-0003", id_kind="library_card")
    assert resp.status_code == 400
    resp = _register(staff, key="desk-key-0004", name="あ" * 81)
    assert resp.status_code == 400
    assert _counts(app) == before and snapshot(app) == snap


def test_only_the_towns_staff_register_residents_and_print_its_cards(app, world):
    card_id, _, _ = _issued(_register(world.api(world.staff)))
    before = _counts(app)
    for who in (world.clerk, world.customer, world.other_staff):
        api = world.api(who)
        assert _register(api, key=f"desk-{who}").status_code == 403
        assert api.get(f"/towns/sarabetsu/cards/{card_id}/card.pdf").status_code == 403
        assert api.get(f"/towns/sarabetsu/cards/{card_id}/balance.pdf").status_code == 403
        assert _form(api, f"/towns/sarabetsu/cards/{card_id}/lock", {}).status_code == 403
        assert _form(api, f"/towns/sarabetsu/cards/{card_id}/replace", {}).status_code == 403
    # Another town's staff cannot reach this card through their own town either.
    other = world.api(world.other_staff)
    assert other.get(f"/towns/toyako/cards/{card_id}/card.pdf").status_code == 404
    assert _form(other, f"/towns/toyako/cards/{card_id}/lock", {}).status_code == 404
    assert _counts(app) == before


def test_the_same_form_sent_ten_times_at_once_registers_one_resident(app, world):
    apis = [world.api(world.staff) for _ in range(10)]
    for api in apis:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    before = _counts(app)
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def go(api) -> None:
        barrier.wait()
        statuses.append(_register(api, key="same-form-key-1").status_code)

    threads = [threading.Thread(target=go, args=(a,)) for a in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * 9
    after = _counts(app)
    assert after["users"] == before["users"] + 1 and after["cards"] == before["cards"] + 1
    assert after["registrations"] == before["registrations"] + 1


def test_the_card_pdf_has_the_town_the_code_and_its_qr_but_never_the_pin(app, world):
    staff = world.api(world.staff)
    card_id, code, pin = _issued(_register(staff))
    resp = staff.get(f"/towns/sarabetsu/cards/{card_id}/card.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_data()
    text = _pdf_text(body)
    with app.app_context():
        town_name = world.town().name_ja
    assert town_name in text and "山田 花子" in text and code in text
    assert pin not in text and pin.encode() not in body
    assert _qr_payloads(body) == [code]
    page = pypdf.PdfReader(io.BytesIO(body)).pages[0]
    width_mm, height_mm = (float(v) * 25.4 / 72 for v in page.mediabox.upper_right)
    assert round(width_mm, 1) == 85.6 and round(height_mm, 1) == 54.0
    # A reprint is the same card.
    again = staff.get(f"/towns/sarabetsu/cards/{card_id}/card.pdf").get_data()
    assert _qr_payloads(again) == [code]


def test_lock_refuses_the_card_at_the_till_and_unlock_accepts_it_again(app, world):
    staff = world.api(world.staff)
    card_id, code, pin = _issued(_register(staff))
    _fund(app, world, card_id, 100)
    clerk = world.api(world.clerk)

    resp = _form(staff, f"/towns/sarabetsu/cards/{card_id}/lock", {})
    assert resp.status_code == 302
    with app.app_context():
        audit = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "card.lock"))
            .one()
        )
        assert audit.subject_id == str(card_id) and audit.town_id == world.town_id
    page = staff.get("/towns/sarabetsu/cards").get_data(as_text=True)
    assert re.search(rf'data-card-code="{code}"[\s\S]*?data-testid="card-state"', page)

    before = snapshot(app)
    r = pay_by_card(clerk, world.merchant_id, code, pin, "locked-1")
    assert_error(r, 423, "card_locked")
    assert snapshot(app) == before

    resp = _form(staff, f"/towns/sarabetsu/cards/{card_id}/unlock", {})
    assert resp.status_code == 302
    with app.app_context():
        audit = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "card.unlock"))
            .one()
        )
        assert audit.details["staff_lock"] is True
    r = pay_by_card(clerk, world.merchant_id, code, pin, "unlocked-1")
    assert r.status_code == 200, r.get_data(as_text=True)


def test_replace_gives_a_new_code_and_pin_and_the_old_code_is_refused(app, world):
    staff = world.api(world.staff)
    card_id, old_code, old_pin = _issued(_register(staff))
    _fund(app, world, card_id, 100)
    resp = _form(staff, f"/towns/sarabetsu/cards/{card_id}/replace", {"card_code": old_code})
    same_id, new_code, new_pin = _issued(resp)
    assert same_id == card_id and new_code != old_code
    # The same press again (the page still showed the old code): refused, nothing changed.
    before = snapshot(app)
    again = _form(staff, f"/towns/sarabetsu/cards/{card_id}/replace", {"card_code": old_code})
    assert again.status_code == 409 and 'data-testid="card-pin"' not in again.get_data(as_text=True)
    assert snapshot(app) == before
    with app.app_context():
        audit = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "card.replace"))
            .one()
        )
        assert audit.details["replaced_card_code"] == old_code
        assert audit.details["card_code"] == new_code
    clerk = world.api(world.clerk)
    assert_error(
        pay_by_card(clerk, world.merchant_id, old_code, old_pin, "old-card-1"),
        400,
        "customer_code_invalid",
    )
    r = pay_by_card(clerk, world.merchant_id, new_code, new_pin, "new-card-1")
    assert r.status_code == 200, r.get_data(as_text=True)
    body = staff.get(f"/towns/sarabetsu/cards/{card_id}/card.pdf").get_data()
    assert _qr_payloads(body) == [new_code] and old_code not in _pdf_text(body)


def test_the_balance_slip_shows_the_residents_balance(app, world):
    staff = world.api(world.staff)
    card_id, code, pin = _issued(_register(staff))
    _fund(app, world, card_id, 1234)
    resp = staff.get(f"/towns/sarabetsu/cards/{card_id}/balance.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert resp.headers["Cache-Control"] == "no-store"
    text = _pdf_text(resp.get_data())
    assert "山田 花子" in text and "1,234 pt" in text and code in text
    assert "日本時間" in text and pin not in text


def test_the_cards_page_lists_the_towns_cards_in_english_too(app, world):
    staff = world.api(world.staff)
    _issued(_register(staff))
    resp = staff.client.get("/towns/sarabetsu/cards", headers={"Accept-Language": "en"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "Register a resident without a phone or e-mail" in html
    assert "山田 花子" in html and "Balance slip" in html


def _fund(app, world, card_id: int, amount: int) -> None:
    """A confirmed balance for the card's resident, as if the indexer had seen it."""
    with app.app_context():
        s = get_db().session
        card = s.get(ResidentCard, card_id)
        address = s.scalar(sa.select(Address.address).where(Address.user_id == card.user_id))
        town = world.town()
        s.merge(
            TokenBalance(
                chain_id=town.chain_id,
                contract_address=town.points_address,
                holder=address,
                amount=Decimal(amount),
            )
        )
        s.commit()


def test_staff_find_a_card_by_name_kana_or_code_and_wildcards_are_literal(app, world):
    staff = world.api(world.staff)
    _, hanako, _ = _issued(_register(staff))
    _, taro, _ = _issued(
        _register(staff, key="desk-key-0100", name="鈴木 太郎", name_kana="すずき たろう")
    )

    def listed(q: str) -> set[str]:
        resp = staff.client.get("/towns/sarabetsu/cards", query_string={"q": q})
        assert resp.status_code == 200
        return set(re.findall(r'data-card-code="(C[A-Z0-9]+)"', resp.get_data(as_text=True)))

    assert listed("") == {hanako, taro}
    assert listed("すずき") == {taro}
    assert listed("花子") == {hanako}
    assert listed(hanako.lower()) == {hanako}
    assert listed("%") == set() and listed("_") == set()
    html = staff.client.get("/towns/sarabetsu/cards?q=%25").get_data(as_text=True)
    assert "該当するカードはありません" in html
