"""The platform of the sale-rush benchmark (bench/rush.py), deployed as docs/deploy-multi-host.md
says on one box: its own anvil (the demo towns deployed, then a block a second), a fresh
PostgreSQL database, a private redis-server, N gunicorn web processes (2 workers each), M Celery
workers (solo pool) and one beat, each process with an instance folder of its own. The demo data
is loaded (Sarabetsu's ambassador card: a points listing of supply 200) and `buyers` people are
created with built-in wallets, funded with points on chain and signed in before the sale.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from eth_account import Account
from web3 import Web3

from bench.processes import Proc, RedisServer, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "correct horse battery"  # noqa: S105 - the bench's own people
PROGRAMME = 2  # the demo town's paid points (180 days)
POINTS_EACH = 5000  # exactly one ambassador card at the demo's price


@dataclass
class Buyer:
    index: int
    email: str
    address: str
    session: requests.Session = field(default_factory=requests.Session)
    client_ip: str = ""
    token: str = ""


@dataclass
class Platform:
    tmp: Path
    webs: int
    workers: int
    buyers_wanted: int
    procs: list[Proc] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    buyers: list[Buyer] = field(default_factory=list)
    listing_id: int = 0
    chain_listing_id: int = 0
    supply: int = 0
    w3: Any = None
    app: Any = None
    _anvil: Any = None
    _redis: RedisServer | None = None
    _db: str = ""
    _env: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ start

    def start(self) -> Platform:
        logs = self.tmp / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._chain(logs)
        self._database()
        self._redis_server()
        self._settings()
        self._setup_app()
        self._spawn(logs)
        self._wait_for_listing()
        self._people()
        return self

    def _chain(self, logs: Path) -> None:
        from backend.chain.anvil import DEV_KEYS, start_anvil
        from backend.chain.deploy import deploy_platform
        from backend.deploy import demo_towns

        self._anvil = start_anvil(logs / "anvil.log")
        self.w3 = Web3(Web3.HTTPProvider(self._anvil.url, request_kwargs={"timeout": 60}))
        self.deployments = self.tmp / "deployments"
        deploy_platform(self.w3, DEV_KEYS[0], self.deployments, demo_towns(partners=False))
        self.w3.provider.make_request("evm_setIntervalMining", [1])  # a block a second

    def _database(self) -> None:
        self._db = f"furusato_rush_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self._db}"'))
        admin.dispose()
        self.db_url = sa.make_url(PG_ADMIN).set(database=self._db).render_as_string(False)
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = self.db_url
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")

    def _redis_server(self) -> None:
        self._redis = RedisServer(self.tmp).start(timeout=20)
        self.redis_url = self._redis.url

    def _settings(self) -> None:
        from backend.chain.anvil import DEV_KEYS
        from backend.chain.role_keys import DEV_ROLE_KEYS

        ports = [free_port() for _ in range(self.webs)]
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.endswith(("_KEY", "_KEYS", "_URL", "_ADDRESSES"))
            and not k.startswith("CELERY")
        }
        self._env = {
            **keep,
            "PYTHONPATH": str(ROOT),
            "SECRET_KEY": secrets.token_hex(32),
            "MASTER_KEY": f"rush-1:{secrets.token_hex(32)}",
            "DATABASE_URL": self.db_url,
            "CELERY_BROKER_URL": self.redis_url,
            "CELERY_RESULT_BACKEND": self.redis_url,
            "RPC_URL": self._anvil.url,
            "CHAIN_ID": "31337",
            "DEPLOYMENTS_DIR": str(self.deployments),
            "ROLE_ADDRESSES": ",".join(
                f"{n}={Account.from_key(k).address}" for n, k in DEV_ROLE_KEYS.items()
            ),
            "RELAYER_ADDRESSES": Account.from_key(DEV_KEYS[1]).address,
            "PUBLIC_URL": self.urls[0],
            "PROXY_HOPS": "1",  # each buyer comes from its own address (X-Forwarded-For)
        }
        self._worker_keys = {
            "ROLE_PRIVATE_KEYS": ",".join(f"{n}={k}" for n, k in DEV_ROLE_KEYS.items()),
            "RELAYER_PRIVATE_KEYS": DEV_KEYS[1],
        }
        self._ports = ports

    def _setup_app(self) -> None:
        """An app in this process on the same database, for the demo data and the people."""
        from backend import create_app
        from backend.config import Settings
        from backend.core import passwords

        # The bench's people are made before the sale; their password hashes are not measured.
        passwords.HASH_METHOD = "scrypt:1024:8:1"
        env = self._env
        self.app = create_app(
            Settings(
                instance_path=self.tmp / "setup",
                secret_key=env["SECRET_KEY"],
                master_key=env["MASTER_KEY"],
                database_url=self.db_url,
                celery_broker_url=self.redis_url,
                celery_result_backend=self.redis_url,
                rpc_url=env["RPC_URL"],
                rpc_timeout=30.0,
                deployments_dir=self.deployments,
                role_addresses=env["ROLE_ADDRESSES"],
                relayer_addresses=env["RELAYER_ADDRESSES"],
            )
        )
        import logging

        from scripts.demo_data import load_demo_data

        logging.getLogger().setLevel(logging.WARNING)  # create_app's INFO lines: not the bench's
        load_demo_data(self.app)

    def _spawn(self, logs: Path) -> None:
        env = self._env
        for i in range(1, self.workers + 1):
            self.procs.append(
                Proc(
                    f"worker{i}",
                    [str(VENV / "celery"), "-A", "backend.worker", "worker", "--pool", "solo"]
                    + ["--loglevel", "INFO", "-n", f"worker{i}@%h"],
                    {**env, **self._worker_keys, "INSTANCE_PATH": str(self.tmp / f"w{i}")},
                    logs,
                )
            )
        self.procs.append(
            Proc(
                "beat",
                [str(VENV / "celery"), "-A", "backend.worker", "beat", "--loglevel", "INFO"]
                + ["--schedule", str(self.tmp / "celerybeat-schedule")],
                {**env, "INSTANCE_PATH": str(self.tmp / "beat")},
                logs,
            )
        )
        for i, port in enumerate(self._ports, 1):
            self.procs.append(
                Proc(
                    f"web{i}",
                    [str(VENV / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
                    + ["--access-logfile", "-", "backend.wsgi:app"],
                    {**env, "INSTANCE_PATH": str(self.tmp / f"web{i}")},
                    logs,
                )
            )
        for url in self.urls:
            wait_for(f"{url}/healthz", partial(self._healthy, url), 180)

    def _healthy(self, url: str) -> bool:
        for p in self.procs:
            p.alive()
        try:
            return requests.get(f"{url}/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    def _wait_for_listing(self) -> None:
        from backend.core.db import get_db
        from backend.regions.models import Town
        from backend.shop.models import Collection, Listing

        def on_chain() -> bool:
            with self.app.app_context():
                s = get_db().session
                row = s.execute(
                    sa.select(Listing.id, Listing.chain_listing_id, Listing.supply)
                    .join(Collection, Collection.id == Listing.collection_id)
                    .join(Town, Town.id == Listing.town_id)
                    .where(
                        Town.slug == "sarabetsu",
                        Collection.slug == "ambassador",
                        Listing.payment_kind == "points",
                    )
                ).first()
                s.rollback()
            if row is None or row.chain_listing_id is None:
                for p in self.procs:
                    p.alive()
                return False
            self.listing_id, self.chain_listing_id = row.id, row.chain_listing_id
            self.supply = int(row.supply)
            return True

        wait_for("the points listing on chain", on_chain)

    def _people(self) -> None:
        from backend.accounts.services import AccountService
        from backend.chain.custody import get_vault
        from backend.chain.registry import artifact, load_deployments
        from backend.chain.role_keys import DEV_ROLE_KEYS
        from backend.core.db import get_db

        with self.app.app_context():
            s = get_db().session()
            accounts = AccountService(s, lambda: get_vault(self.app))
            for i in range(self.buyers_wanted):
                email = f"buyer{i}@rush.example"
                user = accounts.signup(email, PASSWORD, f"Buyer {i}", "ja", verified=True)
                address = _custodial(s, user.id)
                n = i + 1
                self.buyers.append(
                    Buyer(i, email, address, client_ip=f"10.77.{n >> 8 & 255}.{n & 255}")
                )
        deployed = load_deployments(self.deployments, 31337)
        points = self.w3.eth.contract(
            address=deployed.address("towns.sarabetsu.RegionPoints"),
            abi=artifact("RegionPoints").abi,
        )
        issuer = Account.from_key(DEV_ROLE_KEYS["issuer"]).address
        for i in range(0, len(self.buyers), 100):
            chunk = [b.address for b in self.buyers[i : i + 100]]
            tx = points.functions.issueBatch(
                chunk, [POINTS_EACH] * len(chunk), PROGRAMME, "rush"
            ).transact({"from": issuer, "gas": 15_000_000})
            self.w3.eth.wait_for_transaction_receipt(tx, timeout=60)
        for b in self.buyers:  # signed in before the sale, each from its own address
            url = self.urls[b.index % len(self.urls)]
            headers = {"X-Forwarded-For": b.client_ip}
            token = b.session.get(f"{url}/api/csrf", headers=headers, timeout=30).json()
            r = b.session.post(
                f"{url}/api/auth/login",
                json={"email": b.email, "password": PASSWORD},
                headers={**headers, "X-CSRFToken": token["csrf_token"]},
                timeout=30,
            )
            if r.status_code != 200:
                raise RuntimeError(f"log-in of {b.email}: {r.status_code} {r.text[:200]}")
            b.token = b.session.get(f"{url}/api/csrf", headers=headers, timeout=30).json()[
                "csrf_token"
            ]

    # ------------------------------------------------------------------ reading

    def sold_on_chain(self) -> int:
        from backend.chain.registry import artifact, load_deployments

        deployed = load_deployments(self.deployments, 31337)
        sale = self.w3.eth.contract(
            address=deployed.address("towns.sarabetsu.PrimarySale"),
            abi=artifact("PrimarySale").abi,
        )
        return int(sale.functions.listing(self.chain_listing_id).call()[7])

    def order_states(self) -> dict[str, int]:
        from backend.core.db import get_db
        from backend.shop.models import Order

        with self.app.app_context():
            s = get_db().session
            rows = s.execute(
                sa.select(Order.status, sa.func.count())
                .where(Order.listing_id == self.listing_id)
                .group_by(Order.status)
            ).all()
            s.rollback()
        return {status: int(n) for status, n in rows}

    def check_alive(self) -> None:
        for p in self.procs:
            p.alive()

    # ------------------------------------------------------------------ stop

    def stop(self) -> dict[str, int]:
        codes = {p.name: p.stop() for p in reversed(self.procs)}
        if self.app is not None:
            with contextlib.suppress(Exception):
                from backend.core.db import get_db

                with self.app.app_context():
                    get_db().engine.dispose()
        if self._redis is not None:
            self._redis.stop()
        if self._anvil is not None:
            self._anvil.stop()
        if self._db:
            wait_for(f"dropping {self._db}", self._drop_database, 120)
        return codes

    def _drop_database(self) -> bool:
        """Drop the bench's database; False while the server has no connection to spare (a
        shared PostgreSQL under other suites' load answers "too many clients")."""
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._db}" WITH (FORCE)'))
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            admin.dispose()


def _custodial(session: Any, user_id: int) -> str:
    from backend.accounts.models import CUSTODIAL, Address

    return str(
        session.scalar(
            sa.select(Address.address).where(Address.user_id == user_id, Address.kind == CUSTODIAL)
        )
    )
