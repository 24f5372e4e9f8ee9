"""The vault from settings, custodial signing, master-key rotation, and no key material in logs."""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys

import pytest
import sqlalchemy as sa
from click.testing import Result
from eth_account import Account
from eth_account.messages import encode_defunct
from flask import Flask

from backend.accounts.errors import NoCustodialWallet
from backend.accounts.models import Address, User
from backend.accounts.services import AccountService
from backend.chain import custody
from backend.chain.custody import CustodyNotConfigured, parse_master_key, vault_from_settings
from backend.chain.keys import KeyVault, UnknownMasterKey
from backend.config import Settings
from backend.core.db import get_db
from tests.accounts.conftest import MASTER_KEY, MASTER_KEY_HEX, PASSWORD, Api, assert_error
from tests.conftest import ROOT
from tests.factories import UserFactory

NEW_KEY_B64 = base64.b64encode(os.urandom(32)).decode()
NEW_MASTER_KEY = f"mk-test-2:{NEW_KEY_B64}"


def _service(app) -> AccountService:
    return AccountService(get_db().session, lambda: custody.get_vault(app))


def _users_and_rows(app):
    with app.app_context():
        s = get_db().session
        users = list(s.scalars(sa.select(User).order_by(User.id)))
        rows = {r.address: r.sealed_key() for r in s.scalars(sa.select(Address))}
        return users, rows


def _signup(app, n: int) -> list[str]:
    addresses = []
    for i in range(n):
        api = Api(app.test_client())
        body = api.signup(f"user{i}@example.com").get_json()
        addresses.append(body["user"]["addresses"][0]["address"])
    return addresses


# --- settings --------------------------------------------------------------------------


def test_master_key_formats(tmp_path):
    assert parse_master_key(MASTER_KEY).key_id == "mk-test-1"
    assert parse_master_key(NEW_MASTER_KEY).key_id == "mk-test-2"
    assert parse_master_key(f"kms:eu/1:0x{MASTER_KEY_HEX}").key_id == "kms:eu/1"
    for bad in ("", MASTER_KEY_HEX, "id:", ":" + MASTER_KEY_HEX, "id:abcd", "bad id!:" + "0" * 64):
        with pytest.raises(CustodyNotConfigured) as exc:
            parse_master_key(bad)
        assert MASTER_KEY_HEX not in str(exc.value)


def test_vault_from_settings_with_retired_keys(tmp_path):
    s = Settings(instance_path=tmp_path, master_key=NEW_MASTER_KEY, retired_master_keys=MASTER_KEY)
    vault = vault_from_settings(s)
    assert vault.active_key_id == "mk-test-2"
    assert "mk-test-1" in repr(vault) and MASTER_KEY_HEX not in repr(vault)
    assert MASTER_KEY_HEX not in repr(s) and NEW_KEY_B64 not in repr(s)
    with pytest.raises(CustodyNotConfigured, match="more than once"):
        vault_from_settings(
            Settings(instance_path=tmp_path, master_key=MASTER_KEY, retired_master_keys=MASTER_KEY)
        )
    with pytest.raises(CustodyNotConfigured, match="RETIRED_MASTER_KEYS"):
        vault_from_settings(
            Settings(instance_path=tmp_path, master_key=MASTER_KEY, retired_master_keys="x:y")
        )
    with pytest.raises(CustodyNotConfigured, match="MASTER_KEY"):
        vault_from_settings(Settings(instance_path=tmp_path))


def test_dev_master_key_is_made_once_in_instance(monkeypatch, tmp_path):
    for name in ("MASTER_KEY", "MASTER_KEY_FILE", "RETIRED_MASTER_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    s = Settings.from_env()
    path = tmp_path / "master_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings.from_env().master_key == s.master_key == path.read_text()
    assert vault_from_settings(s).active_key_id.startswith("dev-")

    monkeypatch.setenv("MASTER_KEY", NEW_MASTER_KEY)
    monkeypatch.setenv("RETIRED_MASTER_KEYS", f" {MASTER_KEY} ,")
    s = Settings.from_env()
    assert vault_from_settings(s).active_key_id == "mk-test-2"
    assert s.retired_master_keys is not None and NEW_KEY_B64 not in repr(s)


def test_generate_key_command(capsys):
    assert custody.main(["generate-key", "--id", "prod-2026"]) == 0
    line = capsys.readouterr().out.strip()
    assert parse_master_key(line).key_id == "prod-2026"


# --- custodial signing -----------------------------------------------------------------


def test_custodial_signer_signs_for_the_users_address(app):
    [address] = _signup(app, 1)
    with app.app_context():
        user = get_db().session.scalar(sa.select(User))
        signer = _service(app).custodial_signer(user)
        signed = signer.sign_message("ふるさと")
    assert signer.address == address
    assert Account.recover_message(encode_defunct(text="ふるさと"), signature=signed.signature) == (
        address
    )
    assert repr(signer) == f"SealedSigner(address={address!r})"


def test_a_wallet_only_user_has_no_custodial_signer(app):
    with app.app_context():
        user = UserFactory(email=None)  # a wallet-only user: no e-mail, no custodial address
        get_db().session.commit()
        with pytest.raises(NoCustodialWallet) as exc:
            _service(app).custodial_signer(user)
        assert exc.value.status == 404


# --- rotation ----------------------------------------------------------------------------


def _rotate(app: Flask, *args: str) -> Result:
    """`flask --app backend keys rotate` on this app (the command create_app registers)."""
    return app.test_cli_runner().invoke(args=["keys", "rotate", *args])


def test_rotation_rewraps_every_key_and_the_old_key_can_then_go(make_app, deployed):
    old_app = make_app(master_key=MASTER_KEY)
    addresses = _signup(old_app, 3)
    _, before = _users_and_rows(old_app)
    assert {k.master_key_id for k in before.values()} == {"mk-test-1"}

    # Without the old key the stored rows cannot be re-wrapped: refused, nothing changed.
    lost = make_app(master_key=NEW_MASTER_KEY)
    refused = _rotate(lost)
    assert refused.exit_code == 1
    assert "mk-test-1" in refused.stderr
    assert _users_and_rows(lost)[1] == before

    rotating = make_app(master_key=NEW_MASTER_KEY, retired_master_keys=MASTER_KEY)
    done = _rotate(rotating, "--batch-size", "2")
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert "3 re-wrapped under mk-test-2" in out and "0 left" in out

    _, after = _users_and_rows(rotating)
    assert set(after) == set(before) == set(addresses)
    for address, sealed in after.items():
        old = before[address]
        assert sealed.master_key_id == "mk-test-2"
        assert (sealed.ciphertext, sealed.nonce) == (old.ciphertext, old.nonce)
        assert sealed.wrapped_data_key != old.wrapped_data_key

    # Running it again has nothing to do.
    assert custody.rotate_app(rotating)[0].rewrapped == 0

    # The old key is gone from settings: signing and export still work.
    new_only = make_app(master_key=NEW_MASTER_KEY)
    with new_only.app_context():
        users = list(get_db().session.scalars(sa.select(User).order_by(User.id)))
        for user, address in zip(users, addresses, strict=True):
            signed = _service(new_only).custodial_signer(user).sign_message("hello")
            recovered = Account.recover_message(
                encode_defunct(text="hello"), signature=signed.signature
            )
            assert recovered == address
    api = Api(new_only.test_client())
    api.post("/api/auth/login", {"email": "user0@example.com", "password": PASSWORD})
    key = api.post("/api/accounts/export-key", {"password": PASSWORD}).get_json()["private_key"]
    assert Account.from_key(key).address == addresses[0]

    # ...and an app still on the old key alone can no longer read them.
    stale = make_app(master_key=MASTER_KEY)
    api = Api(stale.test_client())
    api.post("/api/auth/login", {"email": "user1@example.com", "password": PASSWORD})
    assert_error(api.post("/api/accounts/export-key", {"password": PASSWORD}), 503)
    with stale.app_context(), pytest.raises(UnknownMasterKey):
        user = get_db().session.scalar(sa.select(User).where(User.email == "user2@example.com"))
        _service(stale).custodial_signer(user).sign_message("x")


def test_rotation_cli_runs_as_a_module(make_app, deployed, pg_url, tmp_path):
    old_app = make_app(master_key=MASTER_KEY)
    [address] = _signup(old_app, 1)
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": "cli-test",
        "MASTER_KEY": NEW_MASTER_KEY,
        "RETIRED_MASTER_KEYS": MASTER_KEY,
    }
    env.pop("MASTER_KEY_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "backend", "keys", "rotate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "accounts.addresses: 1 re-wrapped under mk-test-2" in done.stdout
    for secret in (MASTER_KEY_HEX, NEW_KEY_B64):
        assert secret not in done.stdout + done.stderr
    assert _users_and_rows(old_app)[1][address].master_key_id == "mk-test-2"


# --- logs ---------------------------------------------------------------------------------


def test_no_key_material_in_logs(make_app, deployed, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(master_key=MASTER_KEY)
    api = Api(app.test_client())
    address = api.signup("logs@example.com").get_json()["user"]["addresses"][0]["address"]
    key = api.post("/api/accounts/export-key", {"password": PASSWORD}).get_json()["private_key"]
    assert_error(api.post("/api/accounts/export-key", {"password": "wrong password"}), 401)
    rotating = make_app(master_key=NEW_MASTER_KEY, retired_master_keys=MASTER_KEY)
    assert _rotate(rotating).exit_code == 0
    with rotating.app_context():
        user = get_db().session.scalar(sa.select(User))
        _service(rotating).custodial_signer(user).sign_message("hi")

    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert address in text  # the logs did capture the activity
    raw = bytes.fromhex(key[2:])
    for secret in (
        key[2:],
        key[2:].upper(),
        repr(raw),
        base64.b64encode(raw).decode(),
        MASTER_KEY_HEX,
        NEW_KEY_B64,
        PASSWORD,
    ):
        assert secret not in text


def test_vault_type_is_what_services_get(app):
    with app.app_context():
        assert isinstance(custody.get_vault(app), KeyVault)
        assert custody.get_vault(app) is custody.get_vault(app)
