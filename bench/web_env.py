"""The platform for the web benchmarks (bench/web.py): its own anvil with the demo towns
deployed, a fresh database (SQLite file or PostgreSQL) migrated and loaded with the demo data
and real activity on chain, indexed as the worker would, and the web app served by gunicorn
with 2 workers as `make run` serves it. Scenarios get a `WebEnv`: the base URL, session cookies
of the demo's people, a way to drive the chain and count the node's calls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from eth_account import Account
from flask import Flask
from web3 import Web3

from bench.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "correct horse battery"  # noqa: S105 - the bench's own people


@dataclass
class WebEnv:
    """What a scenario works with. `app` is an in-process app on the same database and chain
    (to seed and to drive the outbox and the indexer); `url` is gunicorn's."""

    tmp: Path
    w3: Web3
    app: Flask
    url: str
    db: str  # "sqlite" | "postgresql"
    anvil_log: Path
    cookies: dict[str, str] = field(default_factory=dict)  # person -> Cookie header
    ids: dict[str, int] = field(default_factory=dict)  # merchant, proposal, ...

    def node_calls(self) -> int:
        """JSON-RPC calls anvil has logged so far (one line per method it served)."""
        text = self.anvil_log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if line[:4] in ("eth_", "net_", "anvi", "evm_"))

    def drive(self, rounds: int = 3) -> None:
        """What the worker's beat does: send queued outbox rows, mine, read receipts, index,
        reconcile orders and record proposals' facts."""
        drive(self.app, self.w3, rounds)


def drive(app: Flask, w3: Web3, rounds: int = 3) -> None:
    from backend.chain.indexer_tasks import index_blocks
    from backend.chain.outbox import outbox_service
    from backend.core.db import get_db
    from backend.dao.tasks import record_proposal_facts
    from backend.shop.tasks import reconcile_orders

    with app.app_context():
        svc = outbox_service()
        session = get_db().session()
        for _ in range(rounds):
            for sender in svc.senders_with_work(session):
                svc.send_pending(session, sender)
            w3.provider.make_request("anvil_mine", ["0x1"])  # type: ignore[arg-type]
            svc.check_receipts(session)
            session.commit()
        index_blocks(max_seconds=60)
        get_db().session.remove()
        reconcile_orders()
        record_proposal_facts()
        get_db().session.remove()


class Client:
    """A person's session on the in-process app (CSRF token sent with every POST); `cookie`
    is the session as a Cookie header that gunicorn's workers accept (same SECRET_KEY and
    database: sessions are signed cookies checked against the user's row)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.token: str | None = None

    def post(self, path: str, json: Any = None) -> Any:
        if self.token is None:
            self.token = self.client.get("/api/csrf").get_json()["csrf_token"]
        resp = self.client.post(path, json=json, headers={"X-CSRFToken": self.token})
        body = resp.get_json(silent=True)
        if isinstance(body, dict) and "csrf_token" in body:
            self.token = body["csrf_token"]
        if resp.status_code >= 400:
            raise SystemExit(f"POST {path}: {resp.status_code} {resp.get_data(as_text=True)}")
        return body

    def login(self, email: str, password: str = PASSWORD) -> Client:
        self.post("/api/auth/login", {"email": email, "password": password})
        return self

    def signup(self, email: str) -> Client:
        self.post("/api/accounts/signup", {"email": email, "password": PASSWORD})
        return self

    @property
    def cookie(self) -> str:
        name = self.app.config.get("SESSION_COOKIE_NAME", "session")
        found = self.client.get_cookie(name)
        assert found is not None, "no session cookie"
        return f"{name}={found.value}"


def _database(kind: str, tmp: Path) -> tuple[str, Callable[[], None]]:
    """A fresh migrated database: (URL, drop)."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'bench-web.db'}"

        def drop() -> None:
            return None

    else:
        name = f"furusato_bench_web_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    return url, drop


def _environment(tmp: Path, rpc_url: str, db_url: str, port: int) -> dict[str, str]:
    """The settings of the web app and of the in-process app, as `make run` sets them."""
    from backend.chain.anvil import DEV_KEYS
    from backend.chain.role_keys import DEV_ROLE_KEYS

    return {
        "INSTANCE_PATH": str(tmp / "instance"),
        "DATABASE_URL": db_url,
        "RPC_URL": rpc_url,
        "DEPLOYMENTS_DIR": str(tmp / "deployments"),
        "CONFIRMATIONS": "0",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SECRET_KEY": "bench-web-" + uuid.uuid4().hex,
        "MASTER_KEY": "bench-web-1:" + "22" * 32,
        "DEPLOYER_PRIVATE_KEY": DEV_KEYS[0],
        "RELAYER_PRIVATE_KEYS": DEV_KEYS[1],
        "ROLE_ADDRESSES": ",".join(
            f"{n}={Account.from_key(k).address}" for n, k in DEV_ROLE_KEYS.items()
        ),
    }


def _seed(env: WebEnv, fans: int, sales: int) -> None:
    """The demo towns, then activity: `fans` people each buy Sarabetsu's ambassador card by
    (test) card, the demo resident pays the demo shop `sales` times by QR (3 to 9 points
    each), the chain moves past the festival proposal's snapshot; indexed and recorded as the
    worker would."""
    from backend.chain.outbox import outbox_service
    from backend.core.db import get_db
    from backend.dao.models import DaoProposal
    from backend.merchants.demo import MERCHANT_EMAIL, MERCHANT_PASSWORD, SHOP_EN
    from backend.merchants.models import Merchant
    from backend.points.demo import RESIDENT_EMAIL, RESIDENT_PASSWORD
    from backend.shop.models import Collection, Listing
    from backend.shop.services import payment_provider
    from scripts.demo_data import load_demo_data

    app = env.app
    with app.app_context():
        outbox_service().auto_dispatch = False
    load_demo_data(app)
    env.drive()
    with app.app_context():
        s = get_db().session
        card_listing = s.scalar(
            sa.select(Listing.id)
            .join(Collection, Collection.id == Listing.collection_id)
            .where(Listing.payment_kind == "card", Collection.slug == "ambassador")
            .order_by(Listing.id)
        )
        shop = s.scalar(sa.select(Merchant.id).where(Merchant.name_en == SHOP_EN))
        proposal = s.scalar(sa.select(DaoProposal.id).order_by(DaoProposal.id))
        assert shop is not None and proposal is not None, "the demo data has a shop and a proposal"
        env.ids["merchant"], env.ids["proposal"] = int(shop), int(proposal)
        provider = payment_provider()
    app.extensions["limiter"].enabled = False  # seeding signs up many people from one address
    people: dict[str, Client] = {}
    for i in range(fans):
        fan = Client(app).signup(f"fan{i}@bench.example")
        order = fan.post(
            "/api/shop/orders",
            {"listing_id": card_listing, "quantity": 1, "idempotency_key": f"bench-fan-{i}"},
        )["order"]
        with app.app_context():
            payload, headers = provider.signed_event(order["id"], "paid", 5000)  # type: ignore[attr-defined]
        resp = fan.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
        assert resp.status_code < 400, resp.get_data(as_text=True)
        people.setdefault("fan", fan)
    clerk = Client(app).login(MERCHANT_EMAIL, MERCHANT_PASSWORD)
    resident = Client(app).login(RESIDENT_EMAIL, RESIDENT_PASSWORD)
    for i in range(sales):
        charge = clerk.post(
            f"/api/merchants/{env.ids['merchant']}/charges",
            {"amount": 3 + i % 7, "idempotency_key": f"bench-sale-{i:04d}"},
        )
        resident.post(f"/api/pay/{charge['charge']['code']}")
        if i % 20 == 19:
            env.drive()
    env.w3.provider.make_request("anvil_mine", ["0x3"])  # type: ignore[arg-type]
    env.drive()
    people.update(clerk=clerk, resident=resident)
    env.cookies = {name: c.cookie for name, c in people.items()}


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited ({proc.returncode}); see {log}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/healthz", timeout=5) as resp,  # noqa: S310
        ):
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"gunicorn did not become healthy in 90 s; see {log}")


@contextlib.contextmanager
def web_env(
    db: str = "sqlite", workers: int = 2, fans: int = 10, sales: int = 40, keep: bool = False
) -> Iterator[WebEnv]:
    """Start everything, seed, yield the environment; stop everything and drop the database."""
    from backend import create_app
    from backend.chain.anvil import DEV_KEYS, start_anvil
    from backend.chain.deploy import deploy_platform
    from backend.chain.role_keys import DEV_ROLE_KEYS
    from backend.config import Settings
    from backend.core.broker import prepare_embedded
    from backend.deploy import demo_towns

    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    node = start_anvil(tmp / "anvil.log")
    proc: subprocess.Popen[bytes] | None = None
    drop: Callable[[], None] = lambda: None  # noqa: E731
    saved = dict(os.environ)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        deploy_platform(w3, DEV_KEYS[0], tmp / "deployments", demo_towns(partners=False))
        db_url, drop = _database(db, tmp)
        port = free_port()
        env_vars = _environment(tmp, node.url, db_url, port)
        os.environ.update(env_vars)
        # The in-process app drives the outbox, so it holds the role keys; gunicorn's web
        # workers get only the roles' addresses, as under `make run`.
        settings = Settings.from_env(
            role_private_keys=",".join(f"{n}={k}" for n, k in DEV_ROLE_KEYS.items())
        )
        prepare_embedded(settings.celery_broker_url)
        app = create_app(settings)
        log = tmp / "gunicorn.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    "--access-logfile",
                    "-",
                    "backend.wsgi:app",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, log)
        env = WebEnv(tmp, w3, app, url, db, tmp / "anvil.log")
        _seed(env, fans, sales)
        yield env
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        node.stop()
        with contextlib.suppress(Exception):
            drop()
        os.environ.clear()
        os.environ.update(saved)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
