"""A user signed in only with their own wallet (SIWE, no built-in account) is not offered a
"Buy with points" form that could only fail: the shop explains why, in Japanese and English,
and still offers test yen from the wallet and the card."""

from __future__ import annotations

import datetime as dt

from eth_account import Account
from eth_account.messages import encode_defunct

from backend.chain.siwe_auth import build_message
from tests.shop.shop_helpers import Api, counts

WALLET = Account.from_key(b"\x44" * 32)
SHOP = "/towns/sarabetsu"
EXPLAINED = 'data-testid="points-need-builtin"'


def _siwe(api: Api) -> None:
    info = api.get("/api/auth/siwe/nonce").get_json()
    now = dt.datetime.now(dt.UTC)
    message = build_message(
        address=WALLET.address,
        domain=info["domain"],
        uri=info["uri"],
        chain_id=info["chain_id"],
        nonce=info["nonce"],
        statement="Sign in to Furusato",
        issued_at=now,
        expiration_time=now + dt.timedelta(minutes=5),
    )
    signature = WALLET.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    resp = api.post("/api/auth/siwe/verify", {"message": message, "signature": signature})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)


def test_wallet_only_user_sees_why_points_cannot_pay_and_keeps_yen_and_card(shop_app):
    api = Api(shop_app.test_client())
    _siwe(api)
    before = counts(shop_app)

    page = api.get(SHOP, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert 'data-buy="points"' not in page
    assert EXPLAINED in page and "ポイントは" in page
    assert 'data-buy="wallet"' in page and 'data-buy="card"' in page

    api.client.set_cookie("lang", "en")
    page = api.get(SHOP).get_data(as_text=True)
    assert 'data-buy="points"' not in page
    assert "you cannot pay with points" in page
    assert 'data-buy="wallet"' in page and 'data-buy="card"' in page
    assert counts(shop_app) == before


def test_an_account_with_a_built_in_wallet_still_buys_with_points(shop_app):
    api = Api(shop_app.test_client())
    api.signup("fan@example.com")
    page = api.get(SHOP).get_data(as_text=True)
    assert 'data-buy="points"' in page and EXPLAINED not in page
