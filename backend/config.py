"""Typed settings, read once from the environment, with embedded defaults for a laptop.

Every default runs without a server: SQLite under instance/, an embedded SQLite Celery broker,
and the local anvil chain that `make run` starts. Set the variables in the README's configuration
table to switch each part to a real server.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from backend.core.broker import default_broker_url

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting is missing or malformed."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _secret(name: str) -> str | None:
    """A secret comes from NAME, or from the file named by NAME_FILE (for mounted secrets)."""
    path = _env(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name}_FILE={path} cannot be read: {exc.strerror}") from None
    return _env(name)


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _int_or_none(name: str) -> int | None:
    return _int(name, 0) if _env(name) is not None else None


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9.$_-]{1,11}$")
MAX_TOKEN_DECIMALS = 36


def _chain_ints(name: str) -> dict[int, int]:
    """ "1:12,137:64" -> {1: 12, 137: 64}."""
    raw = _env(name)
    if raw is None:
        return {}
    try:
        return {int(k): int(v) for k, _, v in (p.partition(":") for p in raw.split(",") if p)}
    except ValueError:
        raise SettingsError(f"{name} must look like 1:12,137:64, got {raw!r}") from None


def _instance_secret_key(instance: Path) -> str:
    """A stable dev secret key kept in instance/, so sessions survive a restart of `make run`."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _instance_master_key(instance: Path) -> str:
    """A dev master key kept in instance/ (0600), so custodial keys survive a restart.

    Format, like MASTER_KEY: ``<key_id>:<64 hex digits or base64 of 32 bytes>``.
    """
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "master_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(f"dev-{secrets.token_hex(4)}:{secrets.token_hex(32)}")
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class Settings:
    instance_path: Path = ROOT / "instance"
    secret_key: str = ""
    database_url: str = ""
    # "" = the embedded SQLite broker under instance/ (backend/core/broker.py).
    celery_broker_url: str = ""
    celery_result_backend: str = ""
    celery_always_eager: bool = False
    rpc_url: str = "http://127.0.0.1:8545"
    rpc_timeout: float = 5.0
    # Seconds /healthz waits for its checks together (issue 11 §7: it answers within 1 s); a
    # check still running then is reported down. Tests that assert "up" widen it: on a loaded
    # CI machine a cold first connection once took longer (backend/core/health.py).
    health_timeout: float = 0.5
    deployments_dir: Path = ROOT / "deployments"
    confirmations: int = 2
    # Per-chain override of `confirmations` (CHAIN_CONFIRMATIONS="1:12,137:64") and the number
    # of blocks the indexer reads per eth_getLogs chunk (INDEXER_CHUNK_SIZE).
    chain_confirmations: dict[int, int] = field(default_factory=dict)
    indexer_chunk_size: int = 2000
    # Events per indexer transaction (INDEXER_BATCH_EVENTS): chunks are added until it is reached.
    indexer_batch_events: int = 10_000
    # Seconds between two looks at the node's head by each worker's block watcher
    # (BLOCK_WATCH_INTERVAL; backend/chain/block_watcher.py); 0 = no watcher, beat ticks only.
    block_watch_interval: float = 0.25
    deployer_private_key: str | None = field(default=None, repr=False)
    relayer_private_key: str | None = field(default=None, repr=False)
    # Outbox (backend/chain/outbox/): more relayer keys as a comma list, one key per platform
    # role as "issuer=0xkey,minter=0xkey,..." (the worker signs with them; ADR 0008), the
    # roles' addresses as "issuer=0xaddr,..." (all the web process needs), and the gas budget.
    relayer_private_keys: str | None = field(default=None, repr=False)
    role_private_keys: str | None = field(default=None, repr=False)
    role_addresses: str | None = None
    # The relayers' addresses (comma list, in the order of RELAYER_PRIVATE_KEYS) for processes
    # that only queue users' requests (web hosts): they pick a user's relayer, never sign.
    relayer_addresses: str | None = None
    gas_cap_per_user_per_day: int = 10**17
    relayer_low_balance_wei: int = 10**16
    outbox_stuck_blocks: int = 3
    # Deeper than this, vanished outbox transactions mean a reset chain, not a reorg: they are
    # not re-sent and a "chain_reset" alert is raised (backend/chain/outbox_recovery.py).
    outbox_max_reorg_depth: int = 64
    # "<key_id>:<64 hex or base64 of 32 bytes>" (see backend/chain/custody.py); retired keys,
    # comma-separated in the same format, only unwrap until `flask --app backend keys rotate`
    # has moved every row.
    master_key: str | None = field(default=None, repr=False)
    retired_master_keys: str | None = field(default=None, repr=False)
    default_locale: str = "ja"
    public_url: str = "http://127.0.0.1:5000"
    testing: bool = False
    # Rate limits (backend/core/limits.py): "" means Redis when the broker is Redis (shared by
    # every web host), else memory:// (per process: the embedded run has one).
    ratelimit_storage_uri: str = ""
    ratelimit_key_prefix: str = "furusato"
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto (0: none). Wrong
    # here means every visitor shares the proxy's address, or a client can forge its own.
    proxy_hops: int = 0
    # Outgoing mail (backend/core/mail.py). Without SMTP_HOST every mail is written to a file
    # under instance/mail/ instead (the embedded run).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str | None = field(default=None, repr=False)
    smtp_password: str | None = field(default=None, repr=False)
    smtp_security: str = "starttls"  # starttls, ssl or none
    mail_from: str = "furusato <no-reply@localhost>"
    # Notification mails (backend/notifications/mailing.py): at most this many to one person in
    # any hour; more wait for the hour to free up (NOTIFICATION_MAILS_PER_HOUR, at least 1).
    notification_mails_per_hour: int = 10
    # Who runs the platform, shown on the terms, privacy, 特定商取引法 and contact pages
    # (OPERATOR_NAME, _ADDRESS, _PHONE, _EMAIL, _MANAGER). Unset: the pages say the details
    # have not been given yet (a demo), rather than show made-up ones.
    operator_name: str = ""
    operator_address: str = ""
    operator_phone: str = ""
    operator_email: str = ""
    operator_manager: str = ""
    # The chain the app serves (CHAIN_ID); None: ask the node at RPC_URL at start-up.
    chain_id: int | None = None
    # Card payments: PAYMENT_PROVIDER=stripe|test (unset means test, allowed on local test
    # chains only: see backend/core/safety.py) and Stripe's two secrets.
    payment_provider: str = ""
    stripe_secret_key: str = field(default="", repr=False)
    stripe_webhook_secret: str = field(default="", repr=False)
    # FAUCET=on|off; unset: on exactly when the chain is a local test chain.
    faucet: str = ""
    # The chain's yen stablecoin (an ERC-20 with EIP-2612 permit) for stablecoin listings, card
    # listings' records and DAO yen payouts: YEN_TOKEN_ADDRESS, YEN_TOKEN_SYMBOL and
    # YEN_TOKEN_DECIMALS, set together. Unset: the deployed TestYenStablecoin (tJPY, 0 decimals)
    # on a local test chain; elsewhere the stablecoin features are off (backend/chain/yen.py).
    yen_token_address: str = ""
    yen_token_symbol: str = ""
    yen_token_decimals: int | None = None
    # Outgoing webhooks (backend/webhooks/): WEBHOOK_PRIVATE_URLS=on|off lets URLs reach
    # loopback and private networks (unset: on exactly on a local test chain, where receivers
    # run on the laptop); off a local test chain a URL must be https either way. Each POST has
    # WEBHOOK_TIMEOUT seconds; a worker's claim on a delivery lasts WEBHOOK_LEASE_SECONDS (more
    # than the timeout: a killed worker's deliveries are retried once it runs out); a failed
    # attempt waits RETRY_BASE * 3^n seconds (jittered, at most RETRY_CAP), MAX_ATTEMPTS in all.
    webhook_private_urls: str = ""
    webhook_timeout: float = 10.0
    webhook_lease_seconds: float = 60.0
    webhook_retry_base: float = 5.0
    webhook_retry_cap: float = 6 * 3600.0
    webhook_max_attempts: int = 10
    # A digital-ID provider (OpenID Connect; e.g. the My Number card's authentication for
    # municipalities) through which residents verify without a visit (backend/residency/oidc.py,
    # ADR 0021): OIDC_ISSUER (discovery at <issuer>/.well-known/openid-configuration),
    # OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and the button's label OIDC_NAME. Unset: off.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_name: str = ""
    # Secrets that from_env generated into instance/ because none was configured: fine on a
    # laptop, refused on a real chain (a second web host would not share them).
    generated_secrets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Derived defaults that depend on instance_path.
        inst = Path(self.instance_path)
        object.__setattr__(self, "instance_path", inst)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{inst / 'furusato.db'}")
        if not self.celery_broker_url:
            object.__setattr__(self, "celery_broker_url", default_broker_url(inst))
        if not self.celery_result_backend:
            object.__setattr__(
                self, "celery_result_backend", f"db+sqlite:///{inst / 'celery-results.db'}"
            )
        if self.default_locale not in ("ja", "en"):
            raise SettingsError("DEFAULT_LOCALE must be ja or en")
        if not self.ratelimit_storage_uri:
            broker = self.celery_broker_url
            uri = broker if broker.startswith(("redis://", "rediss://")) else "memory://"
            object.__setattr__(self, "ratelimit_storage_uri", uri)
        if self.smtp_security not in ("starttls", "ssl", "none"):
            raise SettingsError("SMTP_SECURITY must be starttls, ssl or none")
        if self.notification_mails_per_hour < 1:
            raise SettingsError("NOTIFICATION_MAILS_PER_HOUR must be 1 or more")
        if self.proxy_hops < 0:
            raise SettingsError("PROXY_HOPS must be 0 or more")
        if self.webhook_private_urls not in ("", "on", "off"):
            raise SettingsError("WEBHOOK_PRIVATE_URLS must be on or off")
        if not 0 < self.webhook_timeout < self.webhook_lease_seconds:
            raise SettingsError("WEBHOOK_TIMEOUT must be above 0 and below WEBHOOK_LEASE_SECONDS")
        if self.webhook_max_attempts < 1 or self.webhook_retry_base <= 0:
            raise SettingsError("WEBHOOK_MAX_ATTEMPTS and WEBHOOK_RETRY_BASE must be above 0")
        self._check_yen_token()
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            raise SettingsError("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
        if self.oidc_issuer and not self.oidc_issuer.startswith(("https://", "http://127.0.0.1")):
            raise SettingsError("OIDC_ISSUER must be an https:// URL")

    def _check_yen_token(self) -> None:
        """The yen token's three settings: all or none, each well formed."""
        given = (self.yen_token_address, self.yen_token_symbol, self.yen_token_decimals)
        if not any(v not in ("", None) for v in given):
            return
        if not self.yen_token_address:
            raise SettingsError(
                "YEN_TOKEN_SYMBOL and YEN_TOKEN_DECIMALS need YEN_TOKEN_ADDRESS (set all three)"
            )
        if not _ADDRESS.match(self.yen_token_address) or int(self.yen_token_address, 16) == 0:
            raise SettingsError(
                f"YEN_TOKEN_ADDRESS must be a contract address (0x and 40 hex digits), "
                f"got {self.yen_token_address!r}"
            )
        if not _SYMBOL.match(self.yen_token_symbol):
            raise SettingsError(
                "YEN_TOKEN_SYMBOL must be 1 to 11 letters, digits or .$_- (e.g. JPYC), "
                f"got {self.yen_token_symbol!r}"
            )
        d = self.yen_token_decimals
        if d is None or isinstance(d, bool) or not 0 <= d <= MAX_TOKEN_DECIMALS:
            raise SettingsError(
                f"YEN_TOKEN_DECIMALS must be a whole number from 0 to {MAX_TOKEN_DECIMALS}, "
                f"got {d!r}"
            )

    @property
    def mail_folder(self) -> Path:
        return self.instance_path / "mail"

    def confirmations_for(self, chain_id: int) -> int:
        """Blocks below head that the indexer waits for on `chain_id`."""
        return self.chain_confirmations.get(chain_id, self.confirmations)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read every setting from the environment (see README), then apply overrides."""
        instance = Path(_env("INSTANCE_PATH", str(ROOT / "instance")) or "")
        port = _int("PORT", 5000)
        s = cls(
            instance_path=instance,
            secret_key=_secret("SECRET_KEY") or "",
            database_url=_env("DATABASE_URL", "") or "",
            celery_broker_url=_env("CELERY_BROKER_URL", "") or "",
            celery_result_backend=_env("CELERY_RESULT_BACKEND", "") or "",
            rpc_url=_env("RPC_URL", "http://127.0.0.1:8545") or "",
            deployments_dir=Path(_env("DEPLOYMENTS_DIR", str(ROOT / "deployments")) or ""),
            confirmations=_int("CONFIRMATIONS", 2),
            chain_confirmations=_chain_ints("CHAIN_CONFIRMATIONS"),
            indexer_chunk_size=_int("INDEXER_CHUNK_SIZE", 2000),
            indexer_batch_events=_int("INDEXER_BATCH_EVENTS", 10_000),
            block_watch_interval=_float("BLOCK_WATCH_INTERVAL", 0.25),
            deployer_private_key=_secret("DEPLOYER_PRIVATE_KEY"),
            relayer_private_key=_secret("RELAYER_PRIVATE_KEY"),
            relayer_private_keys=_secret("RELAYER_PRIVATE_KEYS"),
            role_private_keys=_secret("ROLE_PRIVATE_KEYS"),
            role_addresses=_env("ROLE_ADDRESSES"),
            relayer_addresses=_env("RELAYER_ADDRESSES"),
            gas_cap_per_user_per_day=_int("GAS_CAP_PER_USER_PER_DAY", 10**17),
            relayer_low_balance_wei=_int("RELAYER_LOW_BALANCE_WEI", 10**16),
            outbox_stuck_blocks=_int("OUTBOX_STUCK_BLOCKS", 3),
            outbox_max_reorg_depth=_int("OUTBOX_MAX_REORG_DEPTH", 64),
            master_key=_secret("MASTER_KEY"),
            retired_master_keys=_secret("RETIRED_MASTER_KEYS"),
            default_locale=_env("DEFAULT_LOCALE", "ja") or "ja",
            public_url=_env("PUBLIC_URL", f"http://127.0.0.1:{port}") or "",
            ratelimit_storage_uri=_env("RATELIMIT_STORAGE_URI", "") or "",
            proxy_hops=_int("PROXY_HOPS", 0),
            smtp_host=_env("SMTP_HOST", "") or "",
            smtp_port=_int("SMTP_PORT", 587),
            smtp_username=_env("SMTP_USERNAME"),
            smtp_password=_secret("SMTP_PASSWORD"),
            smtp_security=_env("SMTP_SECURITY", "starttls") or "starttls",
            mail_from=_env("MAIL_FROM", "furusato <no-reply@localhost>") or "",
            notification_mails_per_hour=_int("NOTIFICATION_MAILS_PER_HOUR", 10),
            operator_name=_env("OPERATOR_NAME", "") or "",
            operator_address=_env("OPERATOR_ADDRESS", "") or "",
            operator_phone=_env("OPERATOR_PHONE", "") or "",
            operator_email=_env("OPERATOR_EMAIL", "") or "",
            operator_manager=_env("OPERATOR_MANAGER", "") or "",
            chain_id=_int("CHAIN_ID", 0) or None,
            payment_provider=_env("PAYMENT_PROVIDER", "") or "",
            stripe_secret_key=_secret("STRIPE_SECRET_KEY") or "",
            stripe_webhook_secret=_secret("STRIPE_WEBHOOK_SECRET") or "",
            faucet=(_env("FAUCET", "") or "").lower(),
            yen_token_address=_env("YEN_TOKEN_ADDRESS", "") or "",
            yen_token_symbol=_env("YEN_TOKEN_SYMBOL", "") or "",
            yen_token_decimals=_int_or_none("YEN_TOKEN_DECIMALS"),
            webhook_private_urls=(_env("WEBHOOK_PRIVATE_URLS", "") or "").lower(),
            webhook_timeout=_float("WEBHOOK_TIMEOUT", 10.0),
            webhook_lease_seconds=_float("WEBHOOK_LEASE_SECONDS", 60.0),
            webhook_retry_base=_float("WEBHOOK_RETRY_BASE", 5.0),
            webhook_retry_cap=_float("WEBHOOK_RETRY_CAP", 6 * 3600.0),
            webhook_max_attempts=_int("WEBHOOK_MAX_ATTEMPTS", 10),
            oidc_issuer=_env("OIDC_ISSUER", "") or "",
            oidc_client_id=_env("OIDC_CLIENT_ID", "") or "",
            oidc_client_secret=_secret("OIDC_CLIENT_SECRET") or "",
            oidc_name=_env("OIDC_NAME", "") or "",
        )
        s = replace(s, **overrides)  # type: ignore[arg-type]
        generated = list(s.generated_secrets)
        if not s.secret_key:
            s = replace(s, secret_key=_instance_secret_key(s.instance_path))
            generated.append("SECRET_KEY")
        if not s.master_key and s.database_url.startswith("sqlite"):
            # Only for a laptop's embedded database: a server deployment must bring its own
            # MASTER_KEY (losing a generated file would lose every custodial account).
            s = replace(s, master_key=_instance_master_key(s.instance_path))
            generated.append("MASTER_KEY")
        return replace(s, generated_secrets=tuple(generated))
