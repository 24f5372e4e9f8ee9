"""A SIWE-signed-in user buys with test yen from an external wallet: the server prepares the
ERC-20 permit and the ERC-2771 forward request, the wallet (eth_account here) signs both, the
server checks they recover to the user's address and relays the request. Bad signatures change
nothing."""

from __future__ import annotations

import datetime as dt

from eth_account import Account
from eth_account.messages import encode_defunct

from backend.chain.siwe_auth import build_message
from tests.shop.shop_helpers import Api, contract, counts, drive, listing_id

WALLET = Account.from_key(b"\x42" * 32)
OTHER = Account.from_key(b"\x43" * 32)


def _siwe(api: Api, account=WALLET) -> None:
    info = api.get("/api/auth/siwe/nonce").get_json()
    now = dt.datetime.now(dt.UTC)
    message = build_message(
        address=account.address,
        domain=info["domain"],
        uri=info["uri"],
        chain_id=info["chain_id"],
        nonce=info["nonce"],
        statement="Sign in to Furusato",
        issued_at=now,
        expiration_time=now + dt.timedelta(minutes=5),
    )
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    resp = api.post("/api/auth/siwe/verify", {"message": message, "signature": signature})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)


def _sign(account, typed: dict) -> str:
    return account.sign_typed_data(full_message=typed).signature.to_0x_hex()


def _signed_purchase(
    api: Api, listing: int, quantity: int = 1, permit_signer=WALLET, fwd_signer=WALLET
):
    body = {"listing_id": listing, "quantity": quantity}
    step1 = api.post("/api/shop/wallet-orders/permit", body)
    assert step1.status_code == 200, step1.get_json()
    prepared = step1.get_json()
    permit = {**prepared["permit"], "signature": _sign(permit_signer, prepared["typed_data"])}
    step2 = api.post("/api/shop/wallet-orders/forward-request", {**body, "permit": permit})
    if step2.status_code != 200:
        return permit, None, step2
    fwd = step2.get_json()
    request = {**fwd["forward_request"], "signature": _sign(fwd_signer, fwd["typed_data"])}
    return permit, request, step2


def _place(api: Api, listing: int, permit, request, key: str = "wallet-key-0001", quantity=1):
    return api.post(
        "/api/shop/wallet-orders",
        {
            "listing_id": listing,
            "quantity": quantity,
            "idempotency_key": key,
            "permit": permit,
            "forward_request": request,
        },
    )


def test_wallet_user_buys_with_test_yen_signed_in_the_wallet(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    _siwe(api)
    yen_listing = listing_id(app, "stablecoin")
    # No test yen yet: refused before anything is signed.
    poor = api.post("/api/shop/wallet-orders/permit", {"listing_id": yen_listing, "quantity": 1})
    assert poor.status_code == 409 and poor.get_json()["error"]["code"] == "insufficient_balance"
    # The faucet works for the wallet's address.
    assert api.post("/api/shop/faucet").status_code == 202
    drive(app, w3)
    yen = contract(w3, app.extensions["chain"].deployments(), "TestYenStablecoin")
    assert yen.functions.balanceOf(WALLET.address).call() == 10_000

    permit, request, step2 = _signed_purchase(api, yen_listing)
    typed = step2.get_json()["typed_data"]
    assert typed["primaryType"] == "ForwardRequest" and typed["message"]["from"] == WALLET.address
    resp = _place(api, yen_listing, permit, request)
    assert resp.status_code == 201, resp.get_json()
    order = resp.get_json()["order"]
    assert order["status"] == "processing" and order["payment_kind"] == "stablecoin"
    assert resp.get_json()["redirect_url"] == f"/shop/orders/{order['id']}"
    # A double submit returns the first order and changes nothing.
    before = counts(app)
    again = _place(api, yen_listing, permit, request)
    assert again.status_code == 200 and again.get_json()["order"]["id"] == order["id"]
    assert counts(app) == before

    drive(app, w3)
    assert api.get(f"/api/shop/orders/{order['id']}").get_json()["order"]["status"] == "completed"
    assert yen.functions.balanceOf(WALLET.address).call() == 5_000
    assert w3.eth.get_balance(WALLET.address) == 0  # gasless: the relayer paid
    tokens = api.get("/api/shop/my/collection").get_json()["tokens"]
    assert len(tokens) == 1 and tokens[0]["holder"] == WALLET.address


def test_signatures_that_are_not_the_users_are_refused_and_change_nothing(shop_app, w3):
    app = shop_app
    api = Api(app.test_client())
    _siwe(api)
    yen_listing = listing_id(app, "stablecoin")
    assert api.post("/api/shop/faucet").status_code == 202
    drive(app, w3)
    before = counts(app)

    # A permit signed by another key: refused at step 2 already.
    _permit, _request, step2 = _signed_purchase(api, yen_listing, permit_signer=OTHER)
    assert step2.status_code == 400 and step2.get_json()["error"]["code"] == "bad_signature"

    # A forward request signed by another key.
    permit, request, _ = _signed_purchase(api, yen_listing, fwd_signer=OTHER)
    resp = _place(api, yen_listing, permit, request, key="wallet-bad-0001")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_signature"

    # A validly signed request for another purchase (2 items) placed as this one (1 item).
    permit2, request2, _ = _signed_purchase(api, yen_listing, quantity=2)
    resp = _place(api, yen_listing, permit2, request2, key="wallet-bad-0002", quantity=1)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_signature"

    # Garbage and missing signatures.
    resp = _place(api, yen_listing, {**permit, "signature": "0x1234"}, request, key="wallet-bad-3")
    assert resp.status_code == 400
    resp = _place(api, yen_listing, permit, {"to": "nope"}, key="wallet-bad-0004")
    assert resp.status_code == 400
    resp = _place(api, yen_listing, {**permit, "nonce": permit["nonce"] + 1}, request, "wallet-b-5")
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "stale_signature"
    # Only stablecoin listings are paid from a wallet.
    card = api.post(
        "/api/shop/wallet-orders/permit", {"listing_id": listing_id(app, "card"), "quantity": 1}
    )
    assert card.status_code == 400 and card.get_json()["error"]["code"] == "not_wallet_payable"
    assert counts(app) == before
    assert w3.eth.get_balance(WALLET.address) == 0


def test_an_account_without_a_wallet_is_told_to_sign_in_with_one(shop_app):
    app = shop_app
    api = Api(app.test_client())
    anon = api.post(
        "/api/shop/wallet-orders/permit",
        {"listing_id": listing_id(app, "stablecoin"), "quantity": 1},
    )
    assert anon.status_code == 401
    api.signup("fan@example.com")
    before = counts(app)
    resp = api.post(
        "/api/shop/wallet-orders/permit",
        {"listing_id": listing_id(app, "stablecoin"), "quantity": 1},
    )
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "no_wallet"
    assert counts(app) == before
