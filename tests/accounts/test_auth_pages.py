"""Sign-up, log-in and my page as HTML forms (CSRF-protected), in Japanese and English."""

from __future__ import annotations

import re

from eth_account import Account
from eth_account.messages import encode_defunct

from tests.accounts.conftest import PASSWORD, counts


def _token(client, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _signup(client, **form):
    data = {"email": "tourist@example.com", "password": PASSWORD, "display_name": "Hana"}
    data.update(form)
    data.setdefault("csrf_token", _token(client, "/signup"))
    return client.post("/signup", data=data)


def test_signup_logs_in_and_my_page_shows_the_account(app, client):
    resp = _signup(client)
    assert resp.status_code == 302 and resp.headers["Location"] == "/me"
    html = client.get("/me").get_data(as_text=True)
    assert "Hana さんとしてログイン中" in html and "tourist@example.com" in html
    assert "ログアウト" in html
    # A custodial account: no crypto words on the page.
    assert "wallet" not in html.lower().replace("wallet-login", "")
    assert counts(app)["users"] == 1 and counts(app)["addresses"] == 1
    # My page leads to everything a visitor owns.
    for href in ('href="/points"', 'href="/my/collection"', 'href="/points/code"'):
        assert href in html


def test_signup_without_csrf_token_is_refused_and_creates_nothing(app, client):
    resp = _signup(client, csrf_token="")
    assert resp.status_code == 400
    assert counts(app)["users"] == 0


def test_signup_errors_are_translated_and_keep_the_form(app, client):
    client.get("/lang/en")
    resp = _signup(client, password="short")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "The password must be at least 10 characters." in html
    assert 'value="tourist@example.com"' in html and 'aria-invalid="true"' in html
    client.get("/lang/ja")
    resp = _signup(client, email="not-an-email")
    assert resp.status_code == 400
    assert "正しいメールアドレスを入力してください。" in resp.get_data(as_text=True)
    assert counts(app)["users"] == 0


def test_login_logout_and_wrong_password(app, client):
    _signup(client)
    client.post("/logout", data={"csrf_token": _token(client, "/me")})
    assert client.get("/me").status_code == 302  # signed out: my page asks to log in
    bad = client.post(
        "/login",
        data={
            "email": "tourist@example.com",
            "password": "wrong password!",
            "csrf_token": _token(client, "/login"),
        },
    )
    assert bad.status_code == 401
    assert "メールアドレスまたはパスワードが正しくありません。" in bad.get_data(as_text=True)
    ok = client.post(
        "/login?next=/towns/sarabetsu",
        data={
            "email": "tourist@example.com",
            "password": PASSWORD,
            "csrf_token": _token(client, "/login"),
        },
    )
    assert ok.status_code == 302 and ok.headers["Location"] == "/towns/sarabetsu"
    offsite = client.post(
        "/login?next=//evil.example/",
        data={
            "email": "tourist@example.com",
            "password": PASSWORD,
            "csrf_token": _token(client, "/login"),
        },
    )
    assert offsite.headers["Location"] == "/me"


def test_siwe_nonce_with_address_returns_the_exact_message_to_sign(app, client, api):
    acct = Account.create()
    resp = client.get(f"/api/auth/siwe/nonce?address={acct.address.lower()}")
    body = resp.get_json()
    message = body["message"]
    assert message.startswith("127.0.0.1") and acct.address in message  # checksummed
    assert f"Nonce: {body['nonce']}" in message and "Chain ID: 31337" in message
    sig = acct.sign_message(encode_defunct(text=message)).signature.hex()
    verify = api.post(
        "/api/auth/siwe/verify", {"message": message, "signature": "0x" + sig.removeprefix("0x")}
    )
    assert verify.status_code == 201, verify.get_data(as_text=True)
    assert verify.get_json()["address"] == acct.address


def test_siwe_nonce_rejects_a_bad_address_before_issuing_anything(app, client):
    before = counts(app)
    resp = client.get("/api/auth/siwe/nonce?address=0x1234")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["details"]["field"] == "address"
    assert counts(app) == before


def test_my_page_links_platform_operators_to_the_operator_pages(app, client):
    from backend.core.db import get_db
    from backend.onboarding.services import add_operator

    _signup(client)
    html = client.get("/me").get_data(as_text=True)
    assert 'data-testid="operator-link"' not in html and "/operator" not in html
    with app.app_context():
        add_operator(get_db().session(), "tourist@example.com")
    html = client.get("/me").get_data(as_text=True)
    assert 'href="/operator"' in html and "プラットフォームの運営" in html
    english = client.get("/me", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Platform operation" in english
    resp = client.get("/operator")
    assert resp.status_code == 303 and resp.headers["Location"] == "/operator/towns"
    assert client.get(resp.headers["Location"]).status_code == 200
