"""Issue 11 §5: on a chain other than a local test chain the app refuses a laptop-only
configuration at start-up, and the test checkout, its webhook and the faucet do not exist."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from backend import create_app
from backend.chain.anvil import start_anvil
from backend.config import Settings
from backend.core.safety import UnsafeConfiguration

SAFE = {
    "PAYMENT_PROVIDER": "stripe",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "SECRET_KEY": "a-real-secret",
    "MASTER_KEY": "k1:" + "22" * 32,
}
ENV = (*SAFE, "FAUCET", "CHAIN_ID", "DATABASE_URL", "INSTANCE_PATH", "RPC_URL")


@pytest.fixture(scope="module")
def mainnet_like(artifacts_dir: Path):
    """anvil answering with chain id 1, as a real network's node would."""
    node = start_anvil(artifacts_dir / "anvil-chain1.log", chain_id=1)
    yield node
    node.stop()


def _settings(monkeypatch, tmp_path: Path, rpc_url: str, **env: str) -> Settings:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("RPC_URL", rpc_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def _on_chain1(monkeypatch, tmp_path: Path, node, **env: str) -> Settings:
    """Settings for the chain-1 node with a generous RPC timeout.

    On a loaded machine a 5 s chain-id call can time out, and a loopback node that does not
    answer counts as "not up yet" (chain id None, no refusal): CI once saw the MASTER_KEY case
    start instead of refusing. These tests are about what is refused on chain 1, not about how
    fast the node answers."""
    return replace(_settings(monkeypatch, tmp_path, node.url, **env), rpc_timeout=60)


@pytest.mark.heavy  # its own anvil (chain 1)
def test_a_safe_configuration_starts_on_a_real_chain(monkeypatch, tmp_path, mainnet_like):
    app = create_app(_on_chain1(monkeypatch, tmp_path, mainnet_like, **SAFE))
    assert app.extensions["chain_id"] == 1


@pytest.mark.heavy  # its own anvil (chain 1)
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"PAYMENT_PROVIDER": ""}, "PAYMENT_PROVIDER"),
        ({"PAYMENT_PROVIDER": "test"}, "PAYMENT_PROVIDER"),
        ({"STRIPE_SECRET_KEY": ""}, "STRIPE_SECRET_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET"),
        ({"FAUCET": "on"}, "FAUCET"),
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"MASTER_KEY": ""}, "MASTER_KEY"),
    ],
)
def test_each_unsafe_setting_refuses_to_start(monkeypatch, tmp_path, mainnet_like, change, named):
    env = {**SAFE, **change}
    settings = _on_chain1(monkeypatch, tmp_path, mainnet_like, **env)
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(settings)
    assert named in str(refused.value)
    assert "chain 1" in str(refused.value)


def test_the_laptop_defaults_still_start_on_anvil(monkeypatch, tmp_path, anvil):
    # Nothing configured: test provider, generated secrets, faucet on. Fine on chain 31337.
    app = create_app(_settings(monkeypatch, tmp_path, anvil.url))
    assert app.extensions["chain_id"] == 31337
    assert set(app.extensions["settings"].generated_secrets) == {"SECRET_KEY", "MASTER_KEY"}


def test_a_remote_node_that_does_not_answer_needs_chain_id(monkeypatch, tmp_path):
    settings = _settings(monkeypatch, tmp_path, "http://192.0.2.1:8545")  # TEST-NET-1
    settings = replace(settings, rpc_timeout=0.5)
    with pytest.raises(UnsafeConfiguration, match="CHAIN_ID"):
        create_app(settings)
    with pytest.raises(UnsafeConfiguration, match="chain 137"):
        create_app(replace(settings, chain_id=137))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_test_checkout_webhook_and_faucet_do_not_exist_off_a_test_chain(
    make_app, tmp_path, artifacts_dir
):
    """A loopback node that was down at start-up (allowed: `make run` starts anvil next to the
    app) turns out to serve chain 1: the test-only features answer 404 all the same."""
    port = _free_port()
    app = make_app(rpc_url=f"http://127.0.0.1:{port}", deployments_dir=tmp_path)
    node = start_anvil(artifacts_dir / "anvil-late-chain1.log", port=port, chain_id=1)
    try:
        client = app.test_client()
        token = client.get("/api/csrf").get_json()["csrf_token"]
        faucet = client.post("/api/shop/faucet", headers={"X-CSRFToken": token})
        assert faucet.status_code == 404, faucet.get_json()
        hook = client.post("/api/payments/webhooks/test", data=b"{}")
        assert hook.status_code == 404
        assert client.get("/shop/test-checkout/anything").status_code == 404
    finally:
        node.stop()


def test_per_process_rate_limits_are_refused_with_a_server_database(tmp_path):
    """Several web processes on one PostgreSQL database must share their rate-limit counters
    (docs/deploy-multi-host.md): memory:// is refused off a local test chain, Redis is not."""
    from backend.core.safety import problems

    pg = "postgresql+psycopg://furusato@db.internal/furusato"
    base = Settings(
        instance_path=tmp_path,
        secret_key="a-real-secret",
        master_key="k1:" + "22" * 32,
        payment_provider="stripe",
        stripe_secret_key="sk_live_x",
        stripe_webhook_secret="whsec_x",
        database_url=pg,
        celery_broker_url="amqp://rabbit.internal//",
    )
    assert base.ratelimit_storage_uri == "memory://"
    assert any("RATELIMIT_STORAGE_URI" in p for p in problems(base, 1))
    assert problems(base, 31337) == []
    shared = replace(base, ratelimit_storage_uri="redis://redis.internal:6379/2")
    assert problems(shared, 1) == []
    by_broker = Settings(
        **{**base.__dict__, "celery_broker_url": "redis://r:6379/0", "ratelimit_storage_uri": ""}
    )
    assert by_broker.ratelimit_storage_uri == "redis://r:6379/0"
    assert problems(by_broker, 1) == []
    laptop = replace(base, database_url=f"sqlite:///{tmp_path / 'f.db'}")
    assert problems(laptop, 1) == []  # the embedded run of one small machine
