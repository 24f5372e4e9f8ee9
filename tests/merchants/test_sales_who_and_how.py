"""Issue 15 §7 "the sales list shows no method or customer, and the customer's history shows no
shop name": on chain, a customer pays two QR charges; the shop's sales list says how each was
paid and who paid (the display name when the customer has one, else a masked customer code,
never a 0x address or e-mail); the customer's points history names the shop, while the payment
is processing and once it is confirmed."""

from __future__ import annotations

import re

from backend.core.db import get_db
from backend.points.services import points_service
from tests.merchants.conftest import run_chain

JA = {"Accept-Language": "ja"}


def _pay(world, clerk, customer, amount: int, key: str) -> None:
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/charges", {"amount": amount, "idempotency_key": key}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    paid = customer.post(f"/api/pay/{r.get_json()['charge']['code']}")
    assert paid.status_code == 200, paid.get_data(as_text=True)


def test_sales_say_how_and_who_and_the_history_names_the_shop(app, world, w3):
    with app.app_context():
        points_service().grant_welcome_points(world.user(world.customer), world.town())
    run_chain(app, w3)
    clerk, customer = world.api(world.clerk), world.api(world.customer)

    _pay(world, clerk, customer, 120, "sale-who-1")
    history = customer.client.get("/points", headers=JA).get_data(as_text=True)
    assert re.search(r'data-testid="history-shop">直売所 で支払い<', history)  # processing
    run_chain(app, w3)

    desk_url = f"/merchants/{world.merchant_id}"
    html = clerk.client.get(desk_url, headers=JA).get_data(as_text=True)
    sales = re.findall(r'<li data-testid="sale">.*?</li>', html, re.S)
    assert len(sales) == 1
    assert 'data-testid="sale-method">ポイント・QR<' in sales[0]
    masked = re.search(r'data-testid="sale-customer">(••[A-Z2-7]{4})<', sales[0])
    assert masked is not None, sales[0]
    assert "0x" not in sales[0] and "@" not in sales[0]

    with app.app_context():  # with a display name, the shop sees the name
        world.user(world.customer).display_name = "山田 花子"
        get_db().session.commit()
    _pay(world, clerk, customer, 80, "sale-who-2")
    run_chain(app, w3)
    html = clerk.client.get(desk_url, headers=JA).get_data(as_text=True)
    sales = re.findall(r'<li data-testid="sale">.*?</li>', html, re.S)
    assert len(sales) == 2
    assert all('data-testid="sale-customer">山田 花子<' in s for s in sales)

    history = customer.client.get("/points", headers=JA).get_data(as_text=True)
    assert len(re.findall(r'data-testid="history-shop">直売所 で支払い<', history)) == 2
