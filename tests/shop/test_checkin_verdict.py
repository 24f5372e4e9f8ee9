"""The venue's answer at a glance (issue 15 §7 "Used-up ticket"): after a ticket is looked up,
one big OK (green, the holder's name, uses left) or NG (red, why: used up, not valid here,
unknown code), in Japanese and English; the holder is named, never shown as a 0x address
(outside "details"), and a holder without a name is said so."""

from __future__ import annotations

import re

import sqlalchemy as sa

from backend.accounts.models import User
from backend.core.db import get_db
from tests.shop.shop_helpers import VENUE, Api, bought_card, drive

PAGE = "/towns/sarabetsu/checkin"


def _venue(app) -> Api:
    venue = Api(app.test_client())
    resp = venue.post("/api/auth/login", {"email": VENUE[0], "password": VENUE[1]})
    assert resp.status_code == 200
    return venue


def _name(app, email: str, name: str) -> None:
    with app.app_context():
        s = get_db().session
        s.scalar(sa.select(User).where(User.email == email)).display_name = name
        s.commit()


def _verdict(html: str) -> tuple[str, str]:
    m = re.search(r'data-testid="verdict" data-verdict="(ok|ng)"(?: data-reason="(\w+)")?', html)
    assert m, html
    return m.group(1), m.group(2) or ""


def _outside_details(html: str) -> str:
    main = html.split('<main id="main">', 1)[1]
    return re.sub(r"<details>.*?</details>", "", main, flags=re.S)


def test_ok_with_the_holders_name_then_ng_when_used_up(shop_app, w3):
    app = shop_app
    _fan, token = bought_card(app, w3)
    venue = _venue(app)
    code = token["ticket_code"]

    # no name set: said so, never the address
    html = venue.get(PAGE, query_string={"code": code}, headers={"Accept-Language": "ja"})
    body = html.get_data(as_text=True)
    assert _verdict(body) == ("ok", "")
    assert "名前の登録がない持ち主" in body
    assert not re.search(r"0x[0-9a-fA-F]{40}", _outside_details(body))

    _name(app, "fan@example.com", "佐藤 一郎")
    body = venue.get(PAGE, query_string={"code": code}, headers={"Accept-Language": "ja"})
    body = body.get_data(as_text=True)
    assert _verdict(body) == ("ok", "")
    assert 'data-testid="verdict-holder">佐藤 一郎<' in body and "残り 3 回（全 3 回）" in body

    for i in range(3):
        resp = venue.post(
            "/api/shop/towns/sarabetsu/checkin",
            {"code": code, "perk_id": 1, "idempotency_key": f"use-0000000{i}"},
        )
        assert resp.status_code == 201, resp.get_json()
    drive(app, w3)

    ja = venue.get(PAGE, query_string={"code": code}, headers={"Accept-Language": "ja"})
    body = ja.get_data(as_text=True)
    assert _verdict(body) == ("ng", "used_up")
    assert "使い切り" in body and 'data-testid="verdict-holder">佐藤 一郎<' in body
    assert "1回使用済みにする" not in body and 'name="perk_id"' not in body  # nothing to mark
    assert not re.search(r"0x[0-9a-fA-F]{40}", _outside_details(body))
    en = venue.get(PAGE, query_string={"code": code}, headers={"Accept-Language": "en"})
    body = en.get_data(as_text=True)
    assert _verdict(body) == ("ng", "used_up") and "Used up" in body and "佐藤 一郎" in body


def test_ng_for_an_unknown_code_and_another_towns_ticket(shop_app, w3):
    app = shop_app
    venue = _venue(app)
    body = venue.get(
        PAGE, query_string={"code": "FT1.garbage.0000"}, headers={"Accept-Language": "ja"}
    ).get_data(as_text=True)
    assert _verdict(body) == ("ng", "invalid_ticket") and "無効なコード" in body
    body = venue.get(
        PAGE, query_string={"code": "FT1.garbage.0000"}, headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert _verdict(body) == ("ng", "invalid_ticket") and "Unknown code" in body
