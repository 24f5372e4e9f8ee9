"""Email sign-up with a custodial wallet, password sign-in, me, key export, CSRF, bad input."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from eth_account import Account

from backend.accounts.models import Address, User
from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.accounts.conftest import MASTER_KEY, PASSWORD, Api, assert_error, counts


def _rows(app, model):
    with app.app_context():
        return list(get_db().session.scalars(sa.select(model).order_by(model.id)))


def test_signup_creates_a_user_with_one_custodial_address_and_signs_in(app, api):
    resp = api.signup("  Fan@Example.COM ", display_name="ふるさと太郎", locale="en")
    assert resp.status_code == 201
    user = resp.get_json()["user"]
    assert user["email"] == "fan@example.com"
    assert user["display_name"] == "ふるさと太郎" and user["locale"] == "en"
    [addr] = user["addresses"]
    assert addr["kind"] == "custodial" and addr["address"].startswith("0x")

    [row] = _rows(app, Address)
    assert row.address == addr["address"] and row.master_key_id == "mk-test-1"
    [stored] = _rows(app, User)
    assert stored.password_hash.startswith("scrypt:") and PASSWORD not in stored.password_hash

    me = api.get("/api/accounts/me")
    assert me.status_code == 200 and me.get_json()["user"] == user


def test_me_and_every_response_carry_no_key_material(app, api):
    signup_body = api.signup().get_data(as_text=True)
    me_body = api.get("/api/accounts/me").get_data(as_text=True)
    [row] = _rows(app, Address)
    key = api.post("/api/accounts/export-key", {"password": PASSWORD}).get_json()["private_key"]
    for body in (signup_body, me_body):
        text = body.lower()
        for secret in (key[2:], row.ciphertext.hex(), row.wrapped_data_key.hex(), row.nonce.hex()):
            assert secret not in text
        for word in ("ciphertext", "wrapped", "private", "master_key", "password"):
            assert word not in text
    assert set(json.loads(me_body)["user"]["addresses"][0]) == {
        "address",
        "kind",
        "created_at",
        "sign_in_paused",
    }


def test_login_and_logout(app, api, client):
    api.signup()
    api.post("/api/auth/logout")
    assert_error(api.get("/api/accounts/me"), 401, "authentication_required")

    resp = api.post("/api/auth/login", {"email": "FAN@example.com", "password": PASSWORD})
    assert resp.status_code == 200 and resp.get_json()["user"]["email"] == "fan@example.com"
    assert api.get("/api/accounts/me").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_answer(app, api):
    api.signup()
    api.post("/api/auth/logout")
    wrong = assert_error(
        api.post("/api/auth/login", {"email": "fan@example.com", "password": "x" * 12}),
        401,
        "invalid_credentials",
    )
    unknown = assert_error(
        api.post("/api/auth/login", {"email": "nobody@example.com", "password": PASSWORD}),
        401,
        "invalid_credentials",
    )
    assert wrong == unknown
    assert_error(api.post("/api/auth/login", {"email": 5, "password": None}), 401)
    assert_error(api.get("/api/accounts/me"), 401)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, 400, "invalid_input"),
        ({"email": "a@b", "password": PASSWORD}, 400, "invalid_input"),
        ({"password": PASSWORD}, 400, "invalid_input"),
        ({"email": "new@example.com", "password": "short-pw1"}, 400, "invalid_input"),
        ({"email": "new@example.com", "password": 1234567890123}, 400, "invalid_input"),
        ({"email": "new@example.com", "password": PASSWORD, "locale": "fr"}, 400, None),
        ({"email": "FAN@example.com", "password": PASSWORD}, 409, "email_taken"),
        (["not", "an", "object"], 400, "invalid_input"),
    ],
)
def test_bad_signups_are_refused_and_change_nothing(app, api, payload, status, code):
    api.signup()
    before = counts(app)
    err = assert_error(api.post("/api/accounts/signup", payload), status, code)
    assert counts(app) == before
    if status == 400 and code == "invalid_input" and isinstance(payload, dict):
        assert err["details"].get("field") in ("email", "password")


def test_post_without_csrf_token_is_refused_and_changes_nothing(app, client):
    before = counts(app)
    resp = client.post(
        "/api/accounts/signup", json={"email": "fan@example.com", "password": PASSWORD}
    )
    err = assert_error(resp, 400)
    assert err["code"] == "csrf_failed"  # said in words a person understands (the message)
    bad = client.post(
        "/api/accounts/signup",
        json={"email": "fan@example.com", "password": PASSWORD},
        headers={"X-CSRFToken": "forged"},
    )
    assert_error(bad, 400)
    assert counts(app) == before


def test_sign_in_starts_a_new_session(app, api):
    old_token = api.refresh_token()
    api.signup()
    assert api.token != old_token
    # The token of the anonymous session no longer works once signed in.
    resp = api.client.post("/api/auth/logout", json={}, headers={"X-CSRFToken": old_token})
    assert_error(resp, 400)
    assert api.get("/api/accounts/me").status_code == 200


def test_export_needs_the_password_and_is_audit_logged(app, api):
    user = api.signup().get_json()["user"]
    address = user["addresses"][0]["address"]

    assert_error(api.post("/api/accounts/export-key", {"password": "wrong password!"}), 401)
    assert_error(api.post("/api/accounts/export-key", {}), 401, "invalid_credentials")
    assert _rows(app, AuditLog) == []

    resp = api.post("/api/accounts/export-key", {"password": PASSWORD})
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["address"] == address
    assert Account.from_key(body["private_key"]).address == address

    [audit] = _rows(app, AuditLog)
    assert (audit.actor, audit.action, audit.subject_type, audit.subject_id) == (
        f"user:{user['id']}",
        "key.export",
        "address",
        address,
    )
    assert body["private_key"][2:] not in json.dumps(audit.details) + audit.reason

    # The stored ciphertext is not the raw key in any form.
    [row] = _rows(app, Address)
    raw = bytes.fromhex(body["private_key"][2:])
    for blob in (row.ciphertext, row.wrapped_data_key, row.nonce):
        assert raw not in blob and raw.hex().encode() not in blob


def test_export_requires_a_session(app, api):
    assert_error(api.post("/api/accounts/export-key", {"password": PASSWORD}), 401)
    assert counts(app)["audit_log"] == 0


def test_signup_without_a_master_key_is_503_and_changes_nothing(make_app, deployed):
    app = make_app(master_key=None)  # a deployment that forgot MASTER_KEY
    api = Api(app.test_client())
    assert_error(api.signup(), 503, "custody_unavailable")
    assert counts(app) == {"users": 0, "addresses": 0, "siwe_nonces": 0, "audit_log": 0}


def test_key_flows_on_sqlite(make_app, sqlite_url):
    app = make_app(database_url=sqlite_url, master_key=MASTER_KEY)
    api = Api(app.test_client())
    user = api.signup("Local@Example.com").get_json()["user"]
    assert_error(api.signup("local@example.com"), 409, "email_taken")
    api.post("/api/auth/logout")
    assert (
        api.post(
            "/api/auth/login", {"email": "local@example.com", "password": PASSWORD}
        ).status_code
        == 200
    )
    me = api.get("/api/accounts/me").get_json()["user"]
    assert me == user
    key = api.post("/api/accounts/export-key", {"password": PASSWORD}).get_json()["private_key"]
    assert Account.from_key(key).address == user["addresses"][0]["address"]
    assert counts(app) == {"users": 1, "addresses": 1, "siwe_nonces": 0, "audit_log": 1}
