"""Issue 15 §7 "a failed redemption keeps saying '処理中' and the shop is never told": a burn
forced to revert on chain (the projection says 500, the chain holds none) makes the redemption
"failed"; the shop's desk then tells it at the top (in Japanese), says what to do next to the
row and keeps the technical reason under "details"; while a redemption is still burning, the
desk asks for its state (merchant_desk.js, no inline script) so it does not stay "processing"."""

from __future__ import annotations

import re
from decimal import Decimal

from backend.chain.indexer_models import TokenBalance
from backend.core.db import get_db
from backend.merchants.models import Merchant
from tests.merchants.conftest import run_chain

JA = {"Accept-Language": "ja"}


def _projection_says(app, world, amount: int) -> None:
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


def test_a_reverted_burn_is_told_on_the_desk_with_what_to_do(app, world, w3):
    _projection_says(app, world, 500)
    clerk = world.api(world.clerk)
    r = clerk.post(
        f"/api/merchants/{world.merchant_id}/redeem",
        {"amount": 300, "idempotency_key": "burn-fails-ux"},
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    desk_url = f"/merchants/{world.merchant_id}"
    burning = clerk.client.get(desk_url, headers=JA).get_data(as_text=True)
    assert "処理中" in burning and 'data-testid="redeem-failed-notice"' not in burning
    poll = re.search(r'data-redeeming-poll="([^"]+)"', burning)
    assert poll is not None and clerk.get(poll.group(1)).status_code == 200
    assert "js/merchant_desk.js" in burning and "<script>" not in burning

    run_chain(app, w3)  # the relayer sends the burn; it reverts

    html = clerk.client.get(desk_url, headers=JA).get_data(as_text=True)
    notice = re.search(r'data-testid="redeem-failed-notice">([^<]+)<', html)
    assert notice is not None, html
    assert "300" in notice.group(1) and "町にお問い合わせ" in notice.group(1)
    assert 'data-testid="settlement-todo"' in html
    assert re.search(r"<details><summary>[^<]+</summary><span [^>]*settlement-reason", html)
    assert "処理中" not in html and "data-redeeming-poll" not in html


def test_a_later_redemption_that_goes_through_clears_the_notice(app, world, w3):
    _projection_says(app, world, 500)
    clerk = world.api(world.clerk)
    url = f"/api/merchants/{world.merchant_id}/redeem"
    assert clerk.post(url, {"amount": 300, "idempotency_key": "burn-fails-a"}).status_code == 201
    run_chain(app, w3)
    desk_url = f"/merchants/{world.merchant_id}"
    assert 'data-testid="redeem-failed-notice"' in clerk.get(desk_url).get_data(as_text=True)
    # A newer redemption, still burning: the notice is about the last one only.
    assert clerk.post(url, {"amount": 100, "idempotency_key": "burn-next-b"}).status_code == 201
    assert 'data-testid="redeem-failed-notice"' not in clerk.get(desk_url).get_data(as_text=True)
