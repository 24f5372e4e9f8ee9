"""Sign-In with Ethereum over the API: server nonce, domain, URI, chain id and expiry are checked;
a replayed or foreign message is refused and changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from eth_account import Account
from eth_account.messages import encode_defunct

from backend.accounts.models import Address, SiweNonce
from backend.chain.siwe_auth import build_message
from backend.core.db import get_db
from tests.accounts.conftest import MASTER_KEY, Api, assert_error, counts

WALLET = Account.from_key(b"\x42" * 32)
OTHER = Account.from_key(b"\x43" * 32)


def _signed(api: Api, account=WALLET, signer=None, **overrides):
    """Ask the server for a nonce and return (message, signature) for it."""
    info = api.get("/api/auth/siwe/nonce").get_json()
    now = dt.datetime.now(dt.UTC)
    fields = {
        "address": account.address,
        "domain": info["domain"],
        "uri": info["uri"],
        "chain_id": info["chain_id"],
        "nonce": info["nonce"],
        "statement": "Sign in to Furusato",
        "issued_at": now,
        "expiration_time": now + dt.timedelta(minutes=5),
    }
    fields.update(overrides)
    message = build_message(**fields)
    signature = (signer or account).sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    return message, signature


def _signed_by_a_client(api: Api, uri: str, account=WALLET):
    """(message, signature) as a third-party client builds them with the siwe library (siwe-js:
    `new SiweMessage({domain: location.host, address, statement, uri: location.href, version:
    "1", chainId, nonce}).prepareMessage()`): from the nonce's fields only, the URI the page the
    client is on, issued now and no expiry."""
    import siwe

    info = api.get("/api/auth/siwe/nonce").get_json()
    message = siwe.SiweMessage(
        domain=info["domain"],
        address=account.address,
        statement="Sign in with Ethereum to the app.",
        uri=uri,
        version="1",
        chain_id=info["chain_id"],
        nonce=info["nonce"],
        issued_at=siwe.ISO8601Datetime.from_datetime(dt.datetime.now(dt.UTC)),
    ).prepare_message()
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    return message, signature


def _nonce_of(message: str) -> str:
    return message.split("Nonce: ")[1].splitlines()[0]


def _verify(api: Api, message, signature):
    return api.post("/api/auth/siwe/verify", {"message": message, "signature": signature})


def test_nonce_is_stored_and_describes_the_message_to_sign(app, api, anvil):
    info = api.get("/api/auth/siwe/nonce").get_json()
    assert info["domain"] == "127.0.0.1:5000"  # the PUBLIC_URL host
    assert info["uri"] == "http://127.0.0.1:5000"
    assert info["chain_id"] == 31337
    with app.app_context():
        row = get_db().session.scalar(sa.select(SiweNonce))
    assert row.nonce == info["nonce"] and row.used_at is None
    assert row.expires_at > dt.datetime.now(dt.UTC)


def test_a_new_wallet_signs_in_and_gets_an_account(app, api):
    resp = _verify(api, *_signed(api))
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["created_user"] is True and body["address"] == WALLET.address
    assert body["user"]["email"] is None
    [addr] = body["user"]["addresses"]
    assert (addr["address"], addr["kind"]) == (WALLET.address, "external")
    me = api.get("/api/accounts/me").get_json()["user"]
    assert me["id"] == body["user"]["id"]
    with app.app_context():
        assert get_db().session.scalar(sa.select(SiweNonce.used_at)) is not None

    # Signing in again with the same wallet (and a fresh nonce) finds the same account.
    api.post("/api/auth/logout")
    again = _verify(api, *_signed(api))
    assert again.status_code == 200 and again.get_json()["created_user"] is False
    assert again.get_json()["user"]["id"] == body["user"]["id"]
    assert counts(app)["users"] == 1


def test_a_wallet_only_account_links_another_wallet_without_a_password(app, api):
    """An account made by a wallet has no password to give again: signed in (by a signature of
    one of its wallets), it links another by signing with it (docs/adr/0027). Accounts with a
    password link through /api/accounts/wallets (tests/accounts/test_wallet_links.py)."""
    first = _verify(api, *_signed(api)).get_json()["user"]
    resp = _verify(api, *_signed(api, OTHER))
    assert resp.status_code == 200
    assert resp.get_json()["linked"] is True and resp.get_json()["user"]["id"] == first["id"]
    kinds = [
        (a["kind"], a["address"])
        for a in api.get("/api/accounts/me").get_json()["user"]["addresses"]
    ]
    assert kinds == [("external", WALLET.address), ("external", OTHER.address)]
    # Linking it again is a no-op.
    again = _verify(api, *_signed(api, OTHER))
    assert again.status_code == 200 and again.get_json()["linked"] is False
    assert counts(app)["addresses"] == 2


def test_linking_a_wallet_owned_by_another_account_is_409(app, api, client):
    other = Api(app.test_client())
    assert _verify(other, *_signed(other)).status_code == 201
    api.signup()
    before = counts(app)
    message, signature = _signed(api)
    assert_error(_verify(api, message, signature), 409, "address_taken")
    after = counts(app)
    assert {k: after[k] for k in ("users", "addresses")} == {
        k: before[k] for k in ("users", "addresses")
    }
    with app.app_context():
        used = get_db().session.scalar(
            sa.select(SiweNonce.used_at).where(SiweNonce.nonce == _nonce_of(message))
        )
    assert used is None  # rolled back with everything else


def test_a_replayed_message_is_refused(app, api):
    message, signature = _signed(api)
    assert _verify(api, message, signature).status_code == 201
    before = counts(app)
    # Same client: the session's nonce is gone.
    err = assert_error(_verify(api, message, signature), 400, "siwe_rejected")
    assert err["details"]["reason"] == "nonce_missing"
    # Another client replaying the whole session state (message, signature and a session
    # cookie that still names the nonce) is stopped by the database's single-use check.
    thief = Api(app.test_client())
    with thief.client.session_transaction() as sess:
        sess["siwe_nonce"] = _nonce_of(message)
    err = assert_error(_verify(thief, message, signature), 401, "siwe_rejected")
    assert err["details"]["reason"] == "nonce_used"
    assert counts(app) == before


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"domain": "evil.example"}, 401, "domain_mismatch"),
        ({"uri": "https://evil.example"}, 401, "uri_mismatch"),
        ({"chain_id": 1}, 401, "chain_mismatch"),
        ({"nonce": "AAAAAAAAAAAAAAAAAAAAAA"}, 401, "nonce_mismatch"),
        (
            {
                "issued_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                "expiration_time": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
            },
            401,
            "expired",
        ),
        ({"signer": OTHER}, 401, "bad_signature"),
    ],
    ids=[
        "foreign-domain",
        "foreign-uri",
        "wrong-chain",
        "foreign-nonce",
        "expired",
        "wrong-signer",
    ],
)
def test_foreign_or_stale_messages_are_refused_and_create_nothing(
    app, api, overrides, status, reason
):
    message, signature = _signed(api, **overrides)
    before = counts(app)
    err = assert_error(_verify(api, message, signature), status, "siwe_rejected")
    assert err["details"]["reason"] == reason
    assert counts(app) == before
    with app.app_context():
        assert get_db().session.scalar(sa.select(SiweNonce.used_at)) is None
    assert_error(api.get("/api/accounts/me"), 401)


def test_a_client_that_signs_the_page_it_is_on_signs_in(app, api):
    """A third-party client puts the page's own URL in the message (path and query under
    PUBLIC_URL): the same site, accepted."""
    message, signature = _signed_by_a_client(api, "http://127.0.0.1:5000/login?next=/me")
    resp = _verify(api, message, signature)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["address"] == WALLET.address


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/login",  # another site, with this site's domain line
        "https://127.0.0.1:5000/login",  # another scheme
        "http://127.0.0.1:5001/login",  # another port
        "http://evil.example@127.0.0.1:5000/login",  # user info that reads as another site
    ],
)
def test_a_client_message_for_another_uri_is_refused_and_changes_nothing(app, api, uri):
    """EIP-4361's uri is the resource the signature is for: a message signed for another
    site's resource (a phishing page that relays this site's nonce and domain) signs nobody in
    here. Refused as the other mismatches are: 401, no account, the nonce unused in the
    database and gone from the session."""
    message, signature = _signed_by_a_client(api, uri)
    before = counts(app)
    err = assert_error(_verify(api, message, signature), 401, "siwe_rejected")
    assert err["details"]["reason"] == "uri_mismatch"
    assert "このサイトのものではないURL" in err["message"]  # in the default language
    assert counts(app) == before
    with app.app_context():
        assert get_db().session.scalar(sa.select(SiweNonce.used_at)) is None
    assert_error(api.get("/api/accounts/me"), 401)
    again = assert_error(_verify(api, message, signature), 400, "siwe_rejected")
    assert again["details"]["reason"] == "nonce_missing"


def test_an_expired_nonce_is_refused(app, api):
    message, signature = _signed(api)
    with app.app_context():
        s = get_db().session
        s.execute(
            sa.update(SiweNonce).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
        s.commit()
    before = counts(app)
    err = assert_error(_verify(api, message, signature), 401, "siwe_rejected")
    assert err["details"]["reason"] == "nonce_used"
    assert counts(app) == before


@pytest.mark.parametrize(
    "payload",
    [
        {"message": "hello", "signature": "0x00"},
        {"message": None, "signature": None},
        {},
        "just a string",
    ],
)
def test_malformed_requests_are_400(app, api, payload):
    api.get("/api/auth/siwe/nonce")
    before = counts(app)
    resp = api.post("/api/auth/siwe/verify", payload)
    assert_error(resp, 400)
    assert counts(app) == before


def test_verify_without_a_nonce_or_csrf_token(app, api, client):
    message, signature = _signed(Api(app.test_client()))
    err = assert_error(_verify(api, message, signature), 400, "siwe_rejected")
    assert err["details"]["reason"] == "nonce_missing"
    client.get("/api/auth/siwe/nonce")
    resp = client.post("/api/auth/siwe/verify", json={"message": message, "signature": signature})
    assert_error(resp, 400)
    assert counts(app)["users"] == 0


def test_siwe_on_sqlite(make_app, sqlite_url, deployed):
    app = make_app(database_url=sqlite_url, master_key=MASTER_KEY)
    api = Api(app.test_client())
    message, signature = _signed(api)
    assert _verify(api, message, signature).status_code == 201
    thief = Api(app.test_client())
    with thief.client.session_transaction() as sess:
        sess["siwe_nonce"] = _nonce_of(message)
    err = assert_error(_verify(thief, message, signature), 401)
    assert err["details"]["reason"] == "nonce_used"
    with app.app_context():
        [row] = get_db().session.scalars(sa.select(Address))
    assert (row.address, row.kind, row.ciphertext) == (WALLET.address, "external", None)
