"""Issue 15 §7 "the redemption field is pre-filled with the whole balance and sends without
confirmation": the desk's field starts empty; sending it shows the points and the yen they
become, with nothing written; only the confirmation burns (once, with the desk's request key);
a bad or too large amount is refused on the first step with nothing written."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from backend.chain.indexer_models import TokenBalance
from backend.core.db import get_db
from backend.merchants.models import Merchant
from tests.merchants.conftest import snapshot


def _shop_balance(app, world, amount: int) -> None:
    """The shop's confirmed points in the projection (as if the indexer had seen them)."""
    with app.app_context():
        s = get_db().session
        town, shop = world.town(), s.get(Merchant, world.merchant_id)
        s.merge(
            TokenBalance(
                chain_id=town.chain_id,
                contract_address=town.points_address,
                holder=shop.address,
                amount=Decimal(amount),
            )
        )
        s.commit()


def _redeem_field(html: str) -> str:
    match = re.search(r'<input id="r-amount"[^>]*>', html)
    assert match is not None, html
    return match.group(0)


def test_the_field_is_empty_and_sending_asks_to_confirm_first(app, world):
    _shop_balance(app, world, 700)
    clerk = world.api(world.clerk)
    desk = clerk.get(f"/merchants/{world.merchant_id}").get_data(as_text=True)
    field = _redeem_field(desk)
    assert "value=" not in field  # empty: the shop types the amount
    key = re.search(r'name="key" value="([^"]+-r)"', desk)
    assert key is not None
    url = f"/merchants/{world.merchant_id}/redeem"
    before = snapshot(app)
    first = clerk.client.post(
        url, data={"amount": "300", "key": key.group(1)}, headers={"X-CSRFToken": clerk.token}
    )
    html = first.get_data(as_text=True)
    assert first.status_code == 200, html
    assert 'data-testid="redeem-points">300' in html and 'data-testid="redeem-yen">300' in html
    assert 'name="confirm" value="1"' in html
    assert snapshot(app) == before  # nothing sent yet
    confirm = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
    for _ in range(2):  # a double tap on "confirm": one redemption
        sent = clerk.client.post(url, data=confirm, headers={"X-CSRFToken": clerk.token})
        assert sent.status_code == 302, sent.get_data(as_text=True)
    after = snapshot(app)
    assert after["settlements"] == before["settlements"] + 1
    assert after["outbox"] == before["outbox"] + 1


@pytest.mark.parametrize("amount", ["", "0", "-5", "abc", "1.5", "701", "9" * 40])
def test_a_bad_amount_is_refused_at_the_first_step(app, world, amount):
    _shop_balance(app, world, 700)
    clerk = world.api(world.clerk)
    before = snapshot(app)
    resp = clerk.client.post(
        f"/merchants/{world.merchant_id}/redeem",
        data={"amount": amount, "key": "k-r"},
        headers={"X-CSRFToken": clerk.token},
    )
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)
    assert 'name="confirm"' not in resp.get_data(as_text=True)
    assert snapshot(app) == before


def test_someone_else_gets_no_confirmation(app, world):
    customer = world.api(world.customer)
    before = snapshot(app)
    resp = customer.client.post(
        f"/merchants/{world.merchant_id}/redeem",
        data={"amount": "1", "key": "k-r"},
        headers={"X-CSRFToken": customer.token or ""},
    )
    assert resp.status_code in (403, 404)
    assert snapshot(app) == before
