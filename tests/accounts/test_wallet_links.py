"""Wallets that sign in to an account with a password (docs/adr/0027): linking one needs the
password again, and a password reset by mail pauses the sign-in of every wallet of the account
(they stay the account's, with what they hold) until the owner confirms each with the new
password, or removes it. Mail goes through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from eth_account import Account

from backend.accounts.models import Address, SiweNonce, User
from backend.accounts.services import owners_of_addresses
from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.accounts.conftest import MASTER_KEY, PASSWORD, Api, assert_error, counts
from tests.accounts.test_siwe_login import OTHER, WALLET, _signed, _verify

THIEF = Account.from_key(b"\x44" * 32)
NEW_PASSWORD = "a brand new password"


@pytest.fixture
def app(make_app, deployed, smtp_server):
    return make_app(master_key=MASTER_KEY, **smtp_server.settings)


def _linked_in_the_db(app, user_id: int, account) -> None:
    """A wallet linked before: the row as any way of linking leaves it."""
    with app.app_context():
        s = get_db().session
        s.add(Address(user_id=user_id, address=account.address, kind="external"))
        s.commit()


def _link(api: Api, account, password: str | None = PASSWORD):
    message, signature = _signed(api, account)
    body = {"message": message, "signature": signature}
    if password is not None:
        body["password"] = password
    return api.post("/api/accounts/wallets", body)


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _reset_by_mail(app, mailbox, email: str, count: int):
    """Ask for a reset link, follow the `count`-th mail to `email` and choose NEW_PASSWORD;
    the page answered."""
    client = app.test_client()
    client.post(
        "/forgot-password",
        data={"email": email, "csrf_token": _token(client, "/forgot-password")},
        headers={"Accept-Language": "en"},
    )
    path = urlsplit(mailbox.wait_for(email, count=count).link()).path
    return client.post(
        path,
        data={"password": NEW_PASSWORD, "csrf_token": _token(client, path)},
        headers={"Accept-Language": "en"},
    )


def _log_in(app, email: str, password: str) -> Api:
    api = Api(app.test_client())
    assert api.post("/api/auth/login", {"email": email, "password": password}).status_code == 200
    return api


def _actions(app) -> list[tuple[str, str]]:
    with app.app_context():
        rows = get_db().session.execute(
            sa.select(AuditLog.action, AuditLog.subject_id)
            .where(AuditLog.action.like("wallet.%"))
            .order_by(AuditLog.id)
        )
        return [(a, s) for a, s in rows]


def _unused_nonces(app) -> int:
    with app.app_context():
        return get_db().session.scalar(
            sa.select(sa.func.count()).select_from(SiweNonce).where(SiweNonce.used_at.is_(None))
        )


def test_linking_a_wallet_to_an_account_with_a_password_needs_the_password(app, api):
    """A stolen or borrowed session (or a known password alone, in the attacker's own session)
    must not add a wallet that keeps signing in: linking asks for the password, as an address
    change and a key export do. Refusals change nothing and leave the nonce unused."""
    user = api.signup().get_json()["user"]

    # The session alone: sign-in's link path refuses, 403, nothing linked.
    err = assert_error(_verify(api, *_signed(api)), 403, "password_required")
    assert "パスワード" in err["message"]  # where to give it, in the account's language
    # The linking endpoint: no password, or a wrong one, is 401 and links nothing.
    assert_error(_link(api, WALLET, password=None), 401, "invalid_credentials")
    assert_error(_link(api, WALLET, password="not the password"), 401, "invalid_credentials")
    assert counts(app)["addresses"] == 1
    assert _unused_nonces(app) == 3
    assert _actions(app) == []

    # With the password: linked, and audit-logged.
    resp = _link(api, WALLET)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert (resp.get_json()["linked"], resp.get_json()["resumed"]) == (True, False)
    kinds = [(a["kind"], a["address"]) for a in resp.get_json()["user"]["addresses"]]
    assert kinds == [("custodial", user["addresses"][0]["address"]), ("external", WALLET.address)]
    assert _actions(app) == [("wallet.link", WALLET.address)]
    # Again, or through sign-in while signed in: already linked, nothing changes.
    again = _link(api, WALLET)
    assert again.status_code == 200 and again.get_json()["linked"] is False
    assert _verify(api, *_signed(api)).get_json()["linked"] is False
    assert counts(app)["addresses"] == 2
    # The linked wallet signs in to the account.
    api.post("/api/auth/logout")
    signed_in = _verify(api, *_signed(api))
    assert signed_in.status_code == 200 and signed_in.get_json()["user"]["id"] == user["id"]


def test_linking_a_wallet_another_account_holds_is_409_even_with_the_password(app, api):
    other = Api(app.test_client())
    assert _verify(other, *_signed(other)).status_code == 201
    api.signup()
    assert_error(_link(api, WALLET), 409, "address_taken")
    assert counts(app)["addresses"] == 2 and _actions(app) == []


def test_the_wallets_page_links_a_wallet_with_the_password(app, client):
    """The page's form carries the wallet's signature (filled in by static/js/wallet_link.js)
    and the password; a wrong password shows the page again with the error, 401."""
    form = {"email": "fan@example.com", "password": PASSWORD}
    signed_up = client.post("/signup", data={**form, "csrf_token": _token(client, "/signup")})
    assert signed_up.status_code == 302
    api = Api(client)

    def post(password: str):
        message, signature = _signed(api)
        return client.post(
            "/me/wallets",
            data={
                "message": message,
                "signature": signature,
                "password": password,
                "csrf_token": _token(client, "/me/wallets"),
            },
            headers={"Accept-Language": "en"},
        )

    wrong = post("not the password")
    assert wrong.status_code == 401
    assert "The password is incorrect." in wrong.get_data(as_text=True)
    assert wrong.headers["Cache-Control"] == "no-store"
    done = post(PASSWORD)
    assert done.status_code == 302 and done.headers["Location"].endswith("/me/wallets")
    page = client.get("/me/wallets", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert f"The wallet {WALLET.address} is linked." in page
    assert f'data-address="{WALLET.address}" data-paused="no"' in page


def test_a_password_reset_pauses_the_wallets_sign_in_and_says_which(app, mailbox):
    """Someone who knew the password linked their own wallet with it. The owner resets the
    password by mail: every wallet of the account stops signing in (the thief's and the
    owner's own), the reset page and a mail say which and how to confirm them again. They stay
    the account's: cards and tickets in them still show, notices and payouts still find the
    owner. The owner confirms their own wallet with the new password and removes the thief's."""
    owner = Api(app.test_client())
    owner_id = owner.signup("owner@example.com").get_json()["user"]["id"]
    # Linked before the reset (with the password, as the thief could): the rows as any link.
    _linked_in_the_db(app, owner_id, WALLET)
    _linked_in_the_db(app, owner_id, THIEF)
    before_reset = Api(app.test_client())
    assert _verify(before_reset, *_signed(before_reset, THIEF)).status_code == 200

    done = _reset_by_mail(app, mailbox, "owner@example.com", count=2)  # 1st: verification
    assert done.status_code == 200

    # Neither wallet signs in now: 403, no session, nothing written, the nonce unused.
    for account in (THIEF, WALLET):
        anyone = Api(app.test_client())
        message, signature = _signed(anyone, account)
        before = counts(app)
        err = assert_error(_verify(anyone, message, signature), 403, "siwe_rejected")
        assert err["details"]["reason"] == "wallet_paused"
        assert counts(app) == before
        assert_error(anyone.get("/api/accounts/me"), 401)
    assert _unused_nonces(app) == 2

    # The reset's page and a mail say which wallets, and what to do.
    page = done.get_data(as_text=True)
    assert 'data-testid="paused-wallets"' in page
    assert WALLET.address in page and THIEF.address in page
    assert "Remove any wallet you do not recognise." in page
    notice = mailbox.wait_for("owner@example.com", count=3)
    assert notice.subject == "ウォレットでのログインを一時停止しました"  # the account's language
    assert WALLET.address in notice.body and THIEF.address in notice.body
    assert urlsplit(notice.link()).path == "/me/wallets"
    assert _actions(app)[-2:] == [
        ("wallet.pause", WALLET.address),
        ("wallet.pause", THIEF.address),
    ]

    # Still the account's: what the shop lists as the holder's, whom notices and payouts name.
    with app.app_context():
        from backend.shop.services import shop_service

        user = get_db().session.get(User, owner_id)
        assert {WALLET.address, THIEF.address} <= set(shop_service().addresses(user))
        owners = owners_of_addresses(get_db().session, [WALLET.address, THIEF.address])
        assert owners == {WALLET.address: owner_id, THIEF.address: owner_id}

    # The owner logs in with the new password: a paused wallet is confirmed only with it.
    api = _log_in(app, "owner@example.com", NEW_PASSWORD)
    me = api.get("/api/accounts/me").get_json()["user"]
    assert [a["sign_in_paused"] for a in me["addresses"]] == [False, True, True]
    assert_error(_verify(api, *_signed(api)), 403, "password_required")
    assert_error(_link(api, WALLET), 401, "invalid_credentials")  # the old password
    resumed = _link(api, WALLET, NEW_PASSWORD)
    assert resumed.status_code == 200
    assert (resumed.get_json()["linked"], resumed.get_json()["resumed"]) == (False, True)
    # The thief's wallet is removed (the password again); the owner's signs in again.
    assert_error(
        api.post("/api/accounts/wallets/remove", {"address": THIEF.address, "password": PASSWORD}),
        401,
        "invalid_credentials",
    )
    removed = api.post(
        "/api/accounts/wallets/remove", {"address": THIEF.address.lower(), "password": NEW_PASSWORD}
    )
    assert removed.status_code == 200 and removed.get_json()["address"] == THIEF.address
    assert [a["address"] for a in removed.get_json()["user"]["addresses"]][1:] == [WALLET.address]
    assert _actions(app)[-2:] == [
        ("wallet.resume", WALLET.address),
        ("wallet.remove", THIEF.address),
    ]
    fresh = Api(app.test_client())
    assert _verify(fresh, *_signed(fresh)).get_json()["user"]["id"] == owner_id
    # The thief's wallet is nobody's now: signing in with it makes a new wallet-only account.
    thief_again = Api(app.test_client())
    made = _verify(thief_again, *_signed(thief_again, THIEF))
    assert made.status_code == 201 and made.get_json()["user"]["id"] != owner_id


def test_a_reset_pauses_the_built_in_wallet_once_its_key_was_exported(app, mailbox):
    """Whoever exported the built-in wallet's key (it needs the password) can sign in with a
    signature of that key: the reset pauses that too."""
    api = Api(app.test_client())
    api.signup("owner@example.com")
    exported = api.post("/api/accounts/export-key", {"password": PASSWORD}).get_json()
    key = Account.from_key(exported["private_key"])
    thief = Api(app.test_client())
    assert _verify(thief, *_signed(thief, key)).status_code == 200  # the key signs in

    done = _reset_by_mail(app, mailbox, "owner@example.com", count=2)
    late = Api(app.test_client())
    err = assert_error(_verify(late, *_signed(late, key)), 403, "siwe_rejected")
    assert err["details"]["reason"] == "wallet_paused"
    assert exported["address"] in done.get_data(as_text=True)


def test_a_reset_of_an_account_without_wallets_pauses_nothing_and_mails_nothing_more(app, mailbox):
    api = Api(app.test_client())
    api.signup("plain@example.com")
    done = _reset_by_mail(app, mailbox, "plain@example.com", count=2)
    assert done.status_code == 200
    assert 'data-testid="paused-wallets"' not in done.get_data(as_text=True)
    assert len(mailbox.to("plain@example.com")) == 2
    assert _actions(app) == []


def test_removing_a_wallet_needs_the_password_and_an_own_wallet(app, api):
    """Not the built-in wallet, not another account's, not for an account without a password
    (its wallets are its only way in: a borrowed session must not lock the owner out)."""
    user = api.signup().get_json()["user"]
    assert _link(api, WALLET).status_code == 201
    other = Api(app.test_client())
    assert _verify(other, *_signed(other, OTHER)).status_code == 201
    for address in (user["addresses"][0]["address"], OTHER.address, "not an address"):
        assert_error(
            api.post("/api/accounts/wallets/remove", {"address": address, "password": PASSWORD}),
            404,
            "wallet_not_linked",
        )
    assert_error(
        other.post("/api/accounts/wallets/remove", {"address": OTHER.address, "password": ""}),
        401,
        "invalid_credentials",
    )
    with app.app_context():
        held = get_db().session.scalars(sa.select(Address.address).order_by(Address.id)).all()
    assert held == [user["addresses"][0]["address"], WALLET.address, OTHER.address]
