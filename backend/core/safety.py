"""Start-up refusals: on a real chain the app does not start with a configuration that is only
safe on a laptop (issue 11 §5).

On a local test chain (anvil, chain id 31337 or 1337) the embedded defaults are fine: the
built-in test card provider, the test-yen faucet, and secrets generated into instance/. Anywhere
else each of them would let someone mint for free or forge a signature, so `create_app` raises
`UnsafeConfiguration` listing every problem at once, and the operator fixes them in one go.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from backend.config import Settings

# Chain ids of local development nodes (anvil/hardhat 31337, ganache/geth --dev 1337).
LOCAL_TEST_CHAIN_IDS = frozenset({31337, 1337})
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class UnsafeConfiguration(RuntimeError):
    """The configuration is not safe for the chain it points at; the message says what to fix."""


class _ChainIdSource(Protocol):
    @property
    def chain_id(self) -> int: ...


def is_local_test_chain(chain_id: int | None) -> bool:
    return chain_id in LOCAL_TEST_CHAIN_IDS


def resolve_chain_id(settings: Settings, chain: _ChainIdSource) -> int | None:
    """The chain the app serves: CHAIN_ID, else the node's answer.

    None means "a loopback node that does not answer yet": the laptop's `make run` starts anvil
    next to the app. A remote node that does not answer is an error, since we could not tell a
    real chain from a test one: the operator sets CHAIN_ID.
    """
    if settings.chain_id:
        return settings.chain_id
    try:
        return int(chain.chain_id)
    except Exception:
        host = urlsplit(settings.rpc_url).hostname or ""
        if host in LOOPBACK:
            return None
        raise UnsafeConfiguration(
            f"Cannot read the chain id from RPC_URL ({host}); set CHAIN_ID so that the app "
            "knows whether it serves a local test chain."
        ) from None


def problems(settings: Settings, chain_id: int | None) -> list[str]:
    """What makes `settings` unsafe on `chain_id` (empty on local test chains)."""
    if chain_id is None or is_local_test_chain(chain_id):
        return []
    found = []
    provider = settings.payment_provider or "test"
    if provider == "test":
        found.append(
            "PAYMENT_PROVIDER is unset or `test`: the built-in test checkout mints for free. "
            "Set PAYMENT_PROVIDER=stripe."
        )
    elif provider == "stripe":
        for name, value in (
            ("STRIPE_SECRET_KEY", settings.stripe_secret_key),
            ("STRIPE_WEBHOOK_SECRET", settings.stripe_webhook_secret),
        ):
            if not value:
                found.append(f"{name} is empty: card payments cannot be verified.")
    else:
        found.append(f"PAYMENT_PROVIDER={provider!r} is unknown (use stripe).")
    if settings.faucet == "on":
        found.append("FAUCET=on: the test-yen faucet exists only on local test chains.")
    secrets: tuple[tuple[str, str | None], ...] = (
        ("SECRET_KEY", settings.secret_key),
        ("MASTER_KEY", settings.master_key),
    )
    for name, secret in secrets:
        if not secret or name in settings.generated_secrets:
            found.append(
                f"{name} is missing (a key generated into instance/ is for a laptop only): "
                "set it, the same on every web host."
            )
    if not settings.database_url.startswith("sqlite") and (
        settings.ratelimit_storage_uri or "memory://"
    ).startswith("memory://"):
        found.append(
            "RATELIMIT_STORAGE_URI is memory:// (each process counts alone, so N web processes "
            "allow N times every limit): with a server database set it to the Redis every web "
            "host shares (it defaults to CELERY_BROKER_URL when that is Redis)."
        )
    return found


def check_startup(settings: Settings, chain: _ChainIdSource) -> int | None:
    """Raise UnsafeConfiguration unless `settings` are safe for the chain; return its id."""
    chain_id = resolve_chain_id(settings, chain)
    found = problems(settings, chain_id)
    if found:
        lines = "\n".join(f"  - {p}" for p in found)
        raise UnsafeConfiguration(
            f"Refusing to start on chain {chain_id} (not a local test chain):\n{lines}\n"
            "See docs/operations.md, 'Start-up refusals'."
        )
    return chain_id
