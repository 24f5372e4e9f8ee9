"""What a buyer sees of an order (issue 15 §7 Orders): its number, date in Japan time, item,
quantity, price and payment method; a state that follows the chain even when the indexer's
handler missed the buy (never 処理中 with the token in the collection); a printable receipt
(領収書) of a completed order; the purchase history linked from /me, newest first. Someone
else's order and receipt are not found."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from backend.accounts.models import User
from backend.core.db import get_db
from backend.shop.models import Order
from backend.shop.services import payment_provider
from tests.shop.shop_helpers import Api, drive, listing_id

JA = {"Accept-Language": "ja"}
EN = {"Accept-Language": "en"}


def _card_order(app, api: Api, key: str, pay: bool = True) -> str:
    resp = api.post(
        "/api/shop/orders",
        {"listing_id": listing_id(app, "card"), "quantity": 1, "idempotency_key": key},
    )
    assert resp.status_code == 201, resp.get_json()
    public_id = resp.get_json()["order"]["id"]
    if pay:
        with app.app_context():
            payload, headers = payment_provider().signed_event(public_id, "paid", 5000)
        api.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
    return public_id


def _set(app, public_id: str, **values) -> Order:
    with app.app_context():
        s = get_db().session
        order = s.scalar(sa.select(Order).where(Order.public_id == public_id))
        for k, v in values.items():
            setattr(order, k, v)
        s.commit()
        s.refresh(order)
        s.expunge(order)
        return order


def test_order_receipt_and_history_show_what_was_bought_in_japan_time(shop_app, w3):
    app = shop_app
    fan = Api(app.test_client())
    fan.signup("fan@example.com")
    with app.app_context():
        s = get_db().session
        s.scalar(sa.select(User).where(User.email == "fan@example.com")).display_name = "山田 花子"
        s.commit()
    first = _card_order(app, fan, "order-key-0001")
    drive(app, w3)
    # 04:47:59 UTC is 13:47 in Japan: the page reads the Japan minute, labelled
    o = _set(app, first, created_at=dt.datetime(2026, 12, 4, 4, 47, 59, tzinfo=dt.UTC))
    assert o.status == "completed"
    number = f"{o.id:08d}"

    page = fan.get(f"/shop/orders/{first}", headers=JA)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "処理中" not in html and 'data-status="completed"' in html
    assert f'data-testid="order-number">{number}<' in html
    assert "2026年12月4日 13:47（日本時間）" in html
    assert re.search(r'data-testid="order-total"><strong>5,000 円</strong>', html), html
    assert 'data-testid="order-method">クレジットカード<' in html
    assert 'data-testid="order-quantity">1<' in html
    assert f'href="/shop/orders/{first}/receipt"' in html

    receipt = fan.get(f"/shop/orders/{first}/receipt", headers=JA).get_data(as_text=True)
    assert "領収書" in receipt and "山田 花子 様" in receipt
    assert 'data-testid="receipt-amount">5,000 円<' in receipt
    assert 'data-testid="receipt-seller">sarabetsu<' in receipt or "更別村" in receipt
    assert (
        number in receipt and "2026年12月4日 13:47（日本時間）" in receipt and "カード" in receipt
    )
    en = fan.get(f"/shop/orders/{first}/receipt", headers=EN).get_data(as_text=True)
    assert "Receipt" in en and "山田 花子 (buyer)" in en and "2026-12-04 13:47 JST" in en
    assert "5,000 yen" in en and "Card" in en

    # a second order, not paid yet: newest first in the history, and no receipt for it
    second = _card_order(app, fan, "order-key-0002", pay=False)
    assert fan.get(f"/shop/orders/{second}/receipt").status_code == 404
    me = fan.get("/me", headers=JA).get_data(as_text=True)
    assert 'href="/me/purchases"' in me and "購入履歴" in me
    history = fan.get("/me/purchases", headers=JA).get_data(as_text=True)
    shown = re.findall(r'data-testid="purchase" data-order="(\d+)"', history)
    assert shown == [f"{_set(app, second).id:08d}", number]
    assert "5,000 円" in history and "領収書" in history

    # someone else: not found, and nothing of the fan's in their history
    other = Api(app.test_client())
    other.signup("other@example.com")
    assert other.get(f"/shop/orders/{first}").status_code == 404
    assert other.get(f"/shop/orders/{first}/receipt").status_code == 404
    assert 'data-testid="purchase"' not in other.get("/me/purchases").get_data(as_text=True)
    assert Api(app.test_client()).get("/me/purchases").status_code == 302


def test_an_order_whose_buy_is_indexed_never_says_processing(shop_app, w3):
    """The handler matched no order (the event came under another attempt's hash): the token is
    in the collection, and the order page, its JSON and my collection still say done."""
    app = shop_app
    fan = Api(app.test_client())
    fan.signup("fan@example.com")
    public_id = _card_order(app, fan, "order-key-0003")
    drive(app, w3)
    assert [t["token_id"] for t in fan.get("/api/shop/my/collection").get_json()["tokens"]] == [1]
    _set(app, public_id, status="processing", first_token_id=None)  # what the miss leaves

    html = fan.get(f"/shop/orders/{public_id}", headers=JA).get_data(as_text=True)
    assert "処理中" not in html and "マイコレクションに追加されました" in html
    body = fan.get(f"/api/shop/orders/{public_id}").get_json()["order"]
    assert body["status"] == "completed" and body["first_token_id"] == 1
    assert "処理中" not in fan.get("/my/collection", headers=JA).get_data(as_text=True)
