"""The shops page of town staff says, in Japanese and English, that a shop's registration failed
on chain and why, and its "Register the shop again" button registers it once: the shop is then
active on chain. The town's JSON list says "failed" too. Only the town's staff, only with the
form's CSRF token; nothing changes otherwise."""

from __future__ import annotations

import sqlalchemy as sa

from backend.core.db import get_db
from backend.merchants.models import Merchant
from tests.merchants.conftest import run_chain, snapshot
from tests.merchants.registration_helpers import ERROR, add_calls, fail_call, status

SHOPS = "/towns/sarabetsu/shops"


def _form(api, url: str, lang: str = "en"):
    if api.token is None:
        api.token = api.client.get("/api/csrf").get_json()["csrf_token"]
    return api.client.post(url, data={"csrf_token": api.token}, headers={"Accept-Language": lang})


def test_staff_see_the_failed_registration_and_register_the_shop_again(app, world, w3):
    staff = world.api(world.staff)
    created = _form(staff, SHOPS)  # no names: refused, nothing written
    assert created.status_code == 400
    resp = staff.client.post(
        SHOPS, data={"csrf_token": staff.token, "name_ja": "パン屋", "name_en": "Bakery"}
    )
    assert resp.status_code == 302
    with app.app_context():
        m = get_db().session.scalar(sa.select(Merchant).where(Merchant.name_en == "Bakery"))
        mid, tx_id = m.id, m.outbox_tx_id
    fail_call(app, tx_id)

    listed = staff.get("/api/towns/sarabetsu/merchants").get_json()["merchants"]
    assert next(m["status"] for m in listed if m["id"] == mid) == "failed"
    en = staff.client.get(SHOPS, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "the points network refused the registration" in en and ERROR in en
    assert 'data-testid="register-again"' in en
    ja = staff.client.get(SHOPS, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "ポイントネットワークが登録を拒否しました" in ja and "お店をもう一度登録する" in ja

    before = snapshot(app)
    url = f"{SHOPS}/{mid}/register-again"
    assert staff.client.post(url).status_code == 400  # no CSRF token
    other = world.api(world.other_staff)
    assert _form(other, url).status_code == 403
    elsewhere = _form(staff, f"{SHOPS}/{world.other_merchant_id}/register-again")
    assert elsewhere.status_code == 404
    assert snapshot(app) == before and status(app, mid) == ("failed", tx_id)

    again = _form(staff, url)
    assert again.status_code == 302 and again.location.endswith("notice=registered")
    twice = _form(staff, url)
    assert twice.status_code == 302 and twice.location.endswith("notice=unchanged")
    page = staff.client.get(f"{SHOPS}?notice=unchanged", headers={"Accept-Language": "en"})
    assert "Nothing was sent" in page.get_data(as_text=True)

    run_chain(app, w3)
    assert status(app, mid)[0] == "active"
    assert [s for _i, _k, s in add_calls(app, mid)] == ["failed", "confirmed"]
