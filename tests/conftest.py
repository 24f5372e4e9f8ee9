"""Shared fixtures: real anvil, real PostgreSQL (a fresh database per run) and SQLite, the app,
a real Celery worker on Redis, and Debian's chromium through Playwright.

`make test` makes sure PostgreSQL and Redis answer on loopback before pytest starts; the URLs can
be overridden with TEST_PG_ADMIN_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from flask import Flask
from flask.testing import FlaskClient
from web3 import Web3

from backend import create_app
from backend.chain.anvil import AnvilNode, start_anvil
from backend.chain.deploy import deploy_platform
from backend.chain.registry import Deployments, add_artifact_dir
from backend.config import Settings
from backend.core import passwords
from backend.deploy import demo_towns
from backend.models import Base
from tests.chain_admin import ROLE_PRIVATE_KEYS

# Passwords and PINs: scrypt at N=2^10 instead of 2^15 (backend/core/passwords.py). Each hash
# records its parameters, so nothing else changes; at full cost the suite spent over a minute
# of CPU hashing the same few test passwords.
passwords.HASH_METHOD = "scrypt:1024:8:1"

pytest_plugins = ["tests.mail"]  # smtp_server and mailbox: a real SMTP server (aiosmtpd)

ROOT = Path(__file__).resolve().parent.parent
TEST_ABI_DIR = ROOT / "tests" / "abi"  # contracts only tests deploy (scripts/compile_contracts.py)
add_artifact_dir(TEST_ABI_DIR)
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Names this process's PostgreSQL databases, Celery queue and anvil log. Under pytest-xdist every
# worker (gw0, gw1, ...) is a process of its own with its own anvil, databases, queue, SQLite files
# (its own basetemp) and rate-limit prefixes; the worker id in the name keeps them apart.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
RUN_ID = f"{uuid.uuid4().hex[:8]}_{XDIST_WORKER}"
TEST_MASTER_KEY = "test-master-1:" + "11" * 32  # wraps custodial keys in tests only


# ---------------------------------------------------------------- tiers

# Fixtures that start or reach a server (anvil, PostgreSQL, a Celery worker on Redis, chromium).
# A test that needs none of them, directly or through other fixtures, is marked `fast` unless it
# is marked `heavy` (it starts a server itself, or runs for tens of seconds).
# `make test-fast` runs `-m fast`.
SERVER_FIXTURES = frozenset({"anvil", "pg_database", "celery_worker", "browser", "index_chain"})


# Tests that run for half a minute or more (from `make test`'s --durations): they start first,
# so that none of them is still running alone on one worker after the others have finished
# (xdist hands tests out in collection order). A test missing here only risks a later finish.
# Whole files only: moving part of a file would set its module fixtures up twice on one worker
# (test_indexer_worker's named database was then created twice).
LONG_FIRST = (
    "tests/functional/test_api_fuzz.py",
    "tests/functional/test_make_run.py",
    "tests/functional/test_recipes.py",
    "tests/functional/test_run_restart.py",
    "tests/unit/test_artifacts.py",
    "tests/contracts/test_region_points.py",
    "tests/dao/test_dao_journey.py",
    "tests/dao/test_dao_wallet_polls_journey.py",
    "tests/shop/test_broker_outage.py",
    "tests/chain/test_indexer_worker.py",
    "tests/merchants/test_journey_browser.py",
    "tests/browser/test_town_console_journey.py",
    "tests/functional/test_embedded_broker.py",
    "tests/merchants/test_money_concurrency.py",
    "tests/points/test_expiry_days.py",
    "tests/merchants/test_money_pages.py",
    "tests/functional/test_governance_settings.py",
    "tests/functional/test_deploy.py",
    "tests/merchants/test_pay_charge_race.py",
    "tests/dao/test_deep_reorg.py",
    "tests/shop/test_deep_reorg.py",
    "tests/browser/test_shop_journey.py",
    "tests/browser/test_console_collections_page.py",
    "tests/issuing/test_big_upload.py",
    "tests/issuing/test_issuing_browser.py",
    "tests/issuing/test_issue_on_chain.py",
    "tests/partners/test_partners_browser.py",
    "tests/onboarding/test_towns_browser.py",
    "tests/dao/test_dao_api.py",
    "tests/dao/test_external_proposals.py",
    "tests/accounts/test_custody.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("heavy") is None and not fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.fast)
    # Stable: within each part the files keep their order (and their fixtures' reuse).
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))


# ---------------------------------------------------------------- chain


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def anvil(artifacts_dir: Path) -> Iterator[AnvilNode]:
    """One anvil per test session on a free port, logging to test-artifacts/anvil-*.log."""
    node = start_anvil(artifacts_dir / f"anvil-{RUN_ID}.log")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def session_w3(anvil: AnvilNode) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))


@pytest.fixture
def w3(session_w3: Web3) -> Iterator[Web3]:
    """web3 on the session's anvil; every change a test makes to the chain is reverted after it."""
    snap = session_w3.provider.make_request("evm_snapshot", [])["result"]
    yield session_w3
    session_w3.provider.make_request("evm_revert", [snap])


@pytest.fixture(scope="session")
def deployments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deployments")


@pytest.fixture(scope="session")
def deployed(session_w3: Web3, anvil: AnvilNode, deployments_dir: Path) -> Deployments:
    """The platform deployed once per session, as `make run` deploys it (deployments file): the
    two demo towns, 更別村 / Sarabetsu and 洞爺湖町 / Lake Toya (toyako), each with its own
    contracts (backend/deploy.py), not yet partners (partnering is tested from that state)."""
    return deploy_platform(session_w3, anvil.keys[0], deployments_dir, demo_towns(partners=False))


# ---------------------------------------------------------------- databases


def wait_for_path(page: Any, path: str) -> None:
    """Wait until the browser page is at `path` itself: a log-in page's own URL ends in
    "?next=<path>", so a pattern on the whole URL would match before the redirect."""
    page.wait_for_url(lambda url: urlsplit(url).path == path)


def alembic_upgrade(url: str, revision: str = "heads") -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)


def _create_pg_database(name: str) -> str:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        # A test database need not survive a crash of the server: commits do not wait for
        # the WAL to reach the disk (tests commit thousands of times).
        conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit TO off'))
    admin.dispose()
    return sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Callable[[str], str]]:
    """Make fresh PostgreSQL databases for this run (dropped at the end): factory(label) -> URL."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"furusato_test_{RUN_ID}_{label}"
        made.append(name)
        return _create_pg_database(name)

    yield make
    for name in made:
        _drop_pg_database(name)


@pytest.fixture(scope="session")
def pg_url(pg_database: Callable[[str], str]) -> str:
    url = pg_database("main")
    alembic_upgrade(url)
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'furusato.db'}"
    alembic_upgrade(url)
    return url


def _truncate_pg(conn: sa.Connection, names: list[str]) -> None:
    """Empty the tables a test wrote to and restart the sequences it used.

    A TRUNCATE of every table took 1-2 s per test (each truncated table gets new files, fsynced
    at commit), most of them already empty; a DELETE of a few rows takes milliseconds. So one
    query finds the tables that hold rows, they are emptied with DELETE in dependency order
    (`names` is parents first), the audit log with TRUNCATE (its append-only trigger refuses
    DELETE), and every sequence that moved is restarted, so each test sees ids from 1 as before.
    """
    probe = " UNION ALL ".join(f"SELECT '{n}' WHERE EXISTS (SELECT 1 FROM \"{n}\")" for n in names)
    filled = {r[0] for r in conn.execute(sa.text(probe))}
    for name in reversed(names):
        if name not in filled:
            continue
        if name in APPEND_ONLY_TABLES:
            conn.execute(sa.text(f'TRUNCATE "{name}"'))
        else:
            conn.execute(sa.text(f'DELETE FROM "{name}"'))
    moved = conn.execute(
        sa.text(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences"
            " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
        )
    ).scalars()
    for seq in list(moved):
        conn.execute(sa.text("SELECT setval(:s, 1, false)"), {"s": seq})


APPEND_ONLY_TABLES = frozenset({"audit_log"})  # a trigger refuses DELETE (migration 0001)


def _truncate_all(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        present = set(sa.inspect(conn).get_table_names())
        tables = [t for t in Base.metadata.sorted_tables if t.name in present]
        if engine.dialect.name == "postgresql":
            _truncate_pg(conn, [t.name for t in tables])
        else:
            for t in reversed(tables):
                conn.execute(t.delete())
    engine.dispose()


# ---------------------------------------------------------------- app


@pytest.fixture(scope="session")
def base_settings(
    tmp_path_factory: pytest.TempPathFactory, anvil: AnvilNode, deployments_dir: Path
) -> Settings:
    instance = tmp_path_factory.mktemp("instance")
    return Settings(
        instance_path=instance,
        secret_key="test-secret-key",
        database_url=f"sqlite:///{instance / 'unused.db'}",
        celery_broker_url=REDIS_URL,
        celery_result_backend=REDIS_URL,
        rpc_url=anvil.url,
        rpc_timeout=2.0,
        deployments_dir=deployments_dir,
        confirmations=0,
        # The platform's own keys on anvil: key 0 deployed everything and then renounced every
        # role; key 7 relays users' forward requests and pays their gas; keys 10-19 are the role
        # keys, one per role (ADR 0008, tests/chain_admin.py).
        deployer_private_key=anvil.keys[0],
        relayer_private_keys=anvil.keys[7],
        role_private_keys=ROLE_PRIVATE_KEYS,
        master_key=TEST_MASTER_KEY,
        testing=True,
    )


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Run a test once on PostgreSQL and once on SQLite."""
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


RUN_QUEUE = f"furusato-test-{RUN_ID}"  # this process's Celery queue on the shared Redis


def _make_app(settings: Settings, **overrides: Any) -> Flask:
    # Rate-limit counters live in this run's Redis: each app counts on its own.
    overrides.setdefault("ratelimit_key_prefix", f"furusato-test-{uuid.uuid4().hex}")
    app = create_app(replace(settings, **overrides))
    celery = app.extensions["celery"]
    celery.conf.task_default_queue = RUN_QUEUE
    return app


def _purge_run_queue() -> None:
    """Drop tasks an earlier test published to this process's queue with no worker to run them
    (e.g. an outbox dispatch after commit): a later test's worker must not run them first."""
    from kombu import Connection

    with Connection(REDIS_URL) as conn:
        conn.default_channel.queue_purge(RUN_QUEUE)


@pytest.fixture
def make_app(base_settings: Settings, pg_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps with settings overrides; tables of every database used are emptied after.
    Each test starts with this process's Celery queue empty."""
    _purge_run_queue()
    used: set[str] = set()

    def make(**overrides: Any) -> Flask:
        overrides.setdefault("database_url", pg_url)
        used.add(overrides["database_url"])
        return _make_app(base_settings, **overrides)

    yield make
    for url in used:
        # A "down" test points at a deliberately unreachable database: nothing to empty there.
        with contextlib.suppress(sa.exc.OperationalError):
            _truncate_all(url)


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ---------------------------------------------------------------- worker


@pytest.fixture
def celery_worker(app: Flask) -> Iterator[Any]:
    """A real Celery worker (solo pool, in a thread) consuming this run's queue on Redis."""
    from celery.contrib.testing.worker import start_worker

    celery = app.extensions["celery"]
    with start_worker(
        celery,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[celery.conf.task_default_queue],
        shutdown_timeout=10,
    ) as worker:
        yield worker


class BeatTicker:
    """Sends every beat-scheduled task to the worker at a fast, fixed pace, as `celery beat`
    would (the indexer, the outbox sender, receipts), so journeys see the chain within seconds."""

    def __init__(self, app: Flask, every: float = 0.5) -> None:
        self.celery = app.extensions["celery"]
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        entries = [e["task"] for e in self.celery.conf.beat_schedule.values()]
        while not self.stopped.wait(self.every):
            for task in entries:
                self.celery.send_task(task)

    def __enter__(self) -> BeatTicker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        # Ticks nobody consumed would otherwise run in a later test's worker (same run queue),
        # e.g. a stray points.expire_lots before the one that test sends.
        with self.celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(self.celery.conf.task_default_queue)


@pytest.fixture
def platform(app: Flask, w3: Web3, celery_worker: Any) -> Iterator[Any]:
    """The whole platform for a journey: the app served on a free port, a real Celery worker on
    Redis, beat's tasks ticking, on the session's anvil (reverted after the test)."""
    with LiveServer(app) as server, BeatTicker(app):
        yield server


# ---------------------------------------------------------------- browser


class LiveServer:
    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        yield b
        b.close()


@pytest.fixture
def screenshot(artifacts_dir: Path, request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """Save a screenshot of a page to test-artifacts/screenshots/<test>-<step>.png."""
    folder = artifacts_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page: Any, step: str) -> Path:
        path = folder / f"{request.node.name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
