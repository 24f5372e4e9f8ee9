"""Settings: embedded defaults, environment overrides, secrets from files, clear errors."""

from __future__ import annotations

import pytest

from backend.config import Settings, SettingsError


def test_defaults_need_no_server(monkeypatch, tmp_path):
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "RPC_URL", "SECRET_KEY", "SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    s = Settings.from_env()
    assert s.database_url == f"sqlite:///{tmp_path / 'furusato.db'}"
    assert s.celery_broker_url == f"sqla+sqlite:///{tmp_path.resolve() / 'broker.db'}"
    assert s.rpc_url == "http://127.0.0.1:8545"
    # A dev secret key is made once and kept, so sessions survive a restart.
    assert len(s.secret_key) == 64 and Settings.from_env().secret_key == s.secret_key


def test_environment_switches_each_part(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/furusato")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    monkeypatch.setenv("RPC_URL", "https://rpc.example/v1/KEY")
    monkeypatch.setenv("CONFIRMATIONS", "12")
    key_file = tmp_path / "relayer.key"
    key_file.write_text("0xabc\n")
    monkeypatch.setenv("RELAYER_PRIVATE_KEY_FILE", str(key_file))
    s = Settings.from_env()
    assert s.database_url.startswith("postgresql+psycopg://")
    assert s.celery_broker_url.startswith("amqp://")
    assert s.confirmations == 12
    assert s.relayer_private_key == "0xabc"
    assert "0xabc" not in repr(s)  # secrets stay out of reprs and logs


def test_bad_values_are_rejected_with_the_setting_named(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("CONFIRMATIONS", "two")
    with pytest.raises(SettingsError, match="CONFIRMATIONS"):
        Settings.from_env()
    monkeypatch.setenv("CONFIRMATIONS", "2")
    monkeypatch.setenv("MASTER_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="MASTER_KEY_FILE"):
        Settings.from_env()


def test_a_master_key_is_generated_only_for_the_embedded_database(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("MASTER_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    local = Settings.from_env()
    assert local.master_key and (tmp_path / "master_key").exists()
    assert Settings.from_env().master_key == local.master_key  # kept across restarts
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "server"))
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/furusato")
    server = Settings.from_env()
    assert server.master_key is None and not (tmp_path / "server" / "master_key").exists()


def test_session_cookie_is_secure_behind_https(tmp_path):
    from backend import create_app

    plain = create_app(Settings(instance_path=tmp_path, secret_key="k"))
    assert plain.config["SESSION_COOKIE_SECURE"] is False
    https = create_app(
        Settings(instance_path=tmp_path, secret_key="k", public_url="https://furusato.example")
    )
    assert https.config["SESSION_COOKIE_SECURE"] is True


def test_webhook_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    s = Settings.from_env()
    assert (s.webhook_private_urls, s.webhook_timeout, s.webhook_lease_seconds) == ("", 10, 60)
    assert (s.webhook_retry_base, s.webhook_max_attempts) == (5, 10)
    monkeypatch.setenv("WEBHOOK_PRIVATE_URLS", "ON")
    monkeypatch.setenv("WEBHOOK_TIMEOUT", "2.5")
    s = Settings.from_env()
    assert (s.webhook_private_urls, s.webhook_timeout) == ("on", 2.5)
    for name, bad, says in (
        ("WEBHOOK_PRIVATE_URLS", "yes", "WEBHOOK_PRIVATE_URLS"),
        ("WEBHOOK_TIMEOUT", "soon", "WEBHOOK_TIMEOUT"),
        ("WEBHOOK_TIMEOUT", "90", "WEBHOOK_LEASE_SECONDS"),  # a POST must end within its lease
        ("WEBHOOK_MAX_ATTEMPTS", "0", "WEBHOOK_MAX_ATTEMPTS"),
    ):
        with monkeypatch.context() as m:
            m.setenv(name, bad)
            with pytest.raises(SettingsError, match=says):
                Settings.from_env()
