"""The chain's yen token as users read it: on a local chain its test token is test money
(テスト用の円 / "test yen", with the test faucet); a configured token (JPYC, for instance) goes by
its symbol and is never called test money, nor offered by the faucet."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from scripts.demo_data import load_demo_data
from tests.shop.shop_helpers import Api, drive, listing_id
from webui.shared import yen_name


def _shop_page(app: Flask, lang: str, who: str = "fan") -> str:
    api = Api(app.test_client())
    api.signup(f"{who}-{lang}@example.com")
    return api.get("/towns/sarabetsu", headers={"Accept-Language": lang}).get_data(as_text=True)


def test_the_local_test_token_is_called_test_money(shop_app):
    ja = _shop_page(shop_app, "ja")
    assert "5,000 テスト用の円（デジタル円）" in ja and "テスト用の円で買う" in ja
    assert "テスト用の円を受け取る（テストモード）" in ja  # the faucet
    en = _shop_page(shop_app, "en")
    assert "5,000 test yen (digital yen)" in en and "Buy with test yen" in en
    with shop_app.test_request_context(headers={"Accept-Language": "ja"}):
        assert yen_name() == "テスト用の円"


@pytest.fixture
def jpyc_app(make_app: Callable[..., Flask], deployed: Deployments, w3) -> Flask:
    """A local chain whose yen token is configured (here the deployed token itself, named
    JPYC): real money as far as the platform knows."""
    app = make_app(
        yen_token_address=deployed.address("TestYenStablecoin"),
        yen_token_symbol="JPYC",
        yen_token_decimals=0,
    )
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    drive(app, w3)
    return app


def test_a_configured_yen_token_goes_by_its_symbol(jpyc_app):
    for lang in ("ja", "en"):
        page = _shop_page(jpyc_app, lang)
        assert "5,000 JPYC" in page
        assert "テスト" + "用の円" not in page and "test yen" not in page.lower()
        assert "/faucet" not in page  # never minted here
    assert "JPYCで買う" in _shop_page(jpyc_app, "ja", who="again")
    api = Api(jpyc_app.test_client())
    api.signup("buyer@example.com")
    resp = api.post(
        "/api/shop/orders",
        {
            "listing_id": listing_id(jpyc_app, "stablecoin"),
            "quantity": 1,
            "idempotency_key": "jpyc-order-1",
        },
    )
    assert resp.status_code == 409, resp.get_json()
    assert resp.get_json()["error"]["message"].startswith("JPYCが足りません")
    with jpyc_app.test_request_context():
        assert yen_name() == "JPYC"
