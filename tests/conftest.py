"""Shared fixtures: real anvil, real PostgreSQL (a fresh database per run) and SQLite, the app,
a real Celery worker on Redis, and Debian's chromium through Playwright.

`make test` makes sure PostgreSQL and Redis answer on loopback before pytest starts; the URLs can
be overridden with TEST_PG_ADMIN_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
import pytest
import requests
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
from backend.chain.rpc import web3_provider
from backend.config import Settings
from backend.core import passwords
from backend.deploy import demo_towns
from backend.models import Base
from tests import outbox_report
from tests.anvil_pool import MinesMissed
from tests.chain_admin import ROLE_PRIVATE_KEYS
from tests.pytest_logging_lock import hold_logging_lock_while_attaching

# Passwords and PINs: scrypt at N=2^7 instead of 2^15 (backend/core/passwords.py). Each hash
# records its parameters, so nothing else changes; at full cost the suite spent over a minute
# of CPU hashing the same few test passwords, and still about 2 ms a hash at N=2^10 (0.3 ms
# now; werkzeug's memory bound refuses N below 2^7 with r=8).
passwords.HASH_METHOD = "scrypt:128:8:1"

hold_logging_lock_while_attaching()  # a race in pytest 9 with our fixtures' threads (see there)


def _share_rule_parsing() -> None:
    """Parse each URL rule once per process instead of once per app (Rule.compile's
    _parse_rule was a third of create_app's time once the url_for builders were no longer
    compiled with it: backend/core/routing.py compiles each on first use).

    A rule's parts, trace and arguments depend only on its text, its host or subdomain, the
    map's slash merging and the converter classes; the converters themselves belong to a map,
    so they are made again for each rule from the recorded (name, converter, args) calls.
    TEST_SHARED_URL_BUILDERS=0 turns it off to compare.
    """
    if os.environ.get("TEST_SHARED_URL_BUILDERS", "1") == "0":
        return
    from werkzeug.routing.rules import Rule

    compile_rule = Rule.compile
    parsed: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def compile_shared(self: Rule) -> None:
        m = self.map
        assert m is not None, "rule not bound"
        key = (
            self.rule,
            self.host,
            self.subdomain,
            m.host_matching,
            self.merge_slashes,
            tuple(sorted((k, v) for k, v in m.converters.items())),
        )
        hit = parsed.get(key)
        if hit is None:
            made: list[tuple[Any, ...]] = []
            get_converter = self.get_converter

            def recording(name: str, conv: str, args: Any, kwargs: Any) -> Any:
                made.append((name, conv, args, kwargs))
                return get_converter(name, conv, args, kwargs)

            self.get_converter = recording  # type: ignore[method-assign]
            try:
                compile_rule(self)
            finally:
                del self.get_converter
            parsed[key] = (list(self._parts), list(self._trace), made, set(self.arguments))
            return
        parts, trace, made, arguments = hit
        self._parts = list(parts)
        self._trace = list(trace)
        self._converters = {
            name: self.get_converter(name, conv, args, kwargs) for name, conv, args, kwargs in made
        }
        self.arguments.update(arguments)
        self._build = self._compile_builder(False).__get__(self, None)
        self._build_unknown = self._compile_builder(True).__get__(self, None)

    Rule.compile = compile_shared  # type: ignore[method-assign]


_share_rule_parsing()


def _share_engines() -> None:
    """One SQLAlchemy engine per database URL per test process, instead of one per app.

    Every test builds its own app, and each app's engine started with empty statement caches:
    SQLAlchemy keys its compiled SQL (and the ORM's insert and update statements) by the
    engine's dialect object, so each test compiled again every query it ran. Apps of one URL
    share the engine here; make_app still disposes its pool after each test, so no connection
    outlives a test. TEST_SHARED_ENGINES=0 turns it off to compare (docs/benchmarks.md, "Test
    suite", 2026-12-06 03:25: with the shared templates below, 275/259 -> 228/234 busy
    CPU-seconds for 474 tests without a browser).
    """
    if os.environ.get("TEST_SHARED_ENGINES", "1") == "0":
        return
    from backend.core import db

    make_engine = db.make_engine
    engines: dict[str, sa.Engine] = {}

    def make_shared(url: str) -> sa.Engine:
        if url not in engines:
            engines[url] = make_engine(url)
        elif url.startswith("sqlite"):
            db.private_sqlite_file(url)  # a test may have removed or replaced the file
        return engines[url]

    db.make_engine = make_shared


_share_engines()

pytest_plugins = [
    "tests.mail",  # smtp_server and mailbox: a real SMTP server (aiosmtpd)
    "tests.pages",  # live_server, browser, camera and screenshot: the app served, chromium
]

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
    "tests/functional/test_multi_process.py",
    "tests/unit/test_artifacts.py",
    "tests/contracts/test_region_points.py",
    "tests/dao/test_dao_journey.py",
    "tests/dao/test_dao_wallet_polls_journey.py",
    "tests/shop/test_broker_outage.py",
    "tests/chain/test_indexer_worker.py",
    "tests/webhooks/test_worker_kill.py",
    "tests/integrations/test_webhooks_e2e.py",
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
    # Issue 14 and 15 journeys (real worker processes killed and restarted, 1,000 issuances,
    # browser journeys): placed first by their length in the helpers' runs.
    "tests/integrations/test_api_on_chain.py",
    "tests/integrations/test_webhooks_e2e.py",
    "tests/webhooks/test_worker_kill.py",
    "tests/premium/test_worker.py",
    "tests/claims/test_claim_on_chain.py",
    "tests/browser/test_residency_journey.py",
    "tests/browser/test_premium_purchase.py",
    "tests/browser/test_event_check_in_browser.py",
    # Stop 22: the page check (about 35 pages per person, four people) and the new journeys.
    "tests/browser/test_plain_pages.py",
    "tests/browser/test_gift_browser.py",
    "tests/merchants/test_proxy_browser.py",
    "tests/dao/test_vote_confirm_browser.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """The controller of an xdist run names the run itself, so that it can remove at the end
    what the workers shared (the deployed chain, the migrated template databases)."""
    if not hasattr(config, "workerinput") and config.getoption("testrunuid", None) is None:
        config.option.testrunuid = uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _REDIS_USED:
        forget_run_keys(REDIS_URL, RUN_QUEUE)
    run = config.getoption("testrunuid", None)
    if hasattr(config, "workerinput") or run is None:
        return
    with contextlib.suppress(sa.exc.OperationalError):
        _drop_pg_database(f"furusato_test_tmpl_{run[:12]}")
    shutil.rmtree(DEPLOY_CACHE / run, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("heavy") is None and not fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.fast)
    # Stable: within each part the files keep their order (and their fixtures' reuse).
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_FIRST))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that had an app gets the outbox's history and its senders' transactions
    in its report (tests/outbox_report.py): the chain flakes of full runs never happen alone."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    app = outbox_report.app_of(getattr(item, "funcargs", {}))
    if app is not None:
        report.sections.append(("outbox and chain", outbox_report.outbox_and_chain(app)))


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
    # requests looks the proxy settings up in the environment on every call unless told not
    # to (trust_env): a tenth of a chain test's time, and the local anvil needs no proxy.
    http = requests.Session()
    http.trust_env = False
    return Web3(web3_provider(anvil.url, session=http))


@pytest.fixture
def w3(session_w3: Web3) -> Iterator[Web3]:
    """web3 on the session's anvil; every change a test makes to the chain is reverted after it,
    and the transaction pool emptied: evm_revert keeps queued transactions (a nonce above the
    chain's after the rewind), which a later test's sends would otherwise let in, mined there
    with no outbox row behind them."""
    snap = session_w3.provider.make_request("evm_snapshot", [])["result"]
    yield session_w3
    session_w3.provider.make_request("evm_revert", [snap])
    session_w3.provider.make_request("anvil_dropAllTransactions", [])
    _clock_back_to_the_wall(session_w3)


def _clock_back_to_the_wall(w3: Web3) -> None:
    """evm_revert also turns anvil's clock back by the reverted test's length, whether or not
    the test mined anything (measured: 3 s of test, the next block 3 s behind the wall clock).
    Summed over a worker's session the chain fell minutes behind the wall clock, and tests that
    compare the two (a permit deadline, "today" on the chain) failed late in long runs. The
    clock is moved forward by the lag (evm_increaseTime), not set for the next block: a pending
    evm_setNextBlockTimestamp would override the next test's own evm_increaseTime."""
    pending = w3.provider.make_request("eth_getBlockByNumber", ["pending", False])["result"]
    lag = int(time.time()) - int(pending["timestamp"], 16)
    if lag > 0:
        w3.provider.make_request("evm_increaseTime", [lag])


@pytest.fixture(autouse=True)
def _chain_restored_after_each_test(request: pytest.FixtureRequest) -> None:
    """Every test on the session's chain gets it back as it found it, whether or not it asked
    for `w3`: the indexer reads each town's contracts from their deployment block, so a
    transaction left behind by one test (a town onboarded, points granted) reached a later
    test's projection as an event nobody sent (CI, stop 21). The platform is deployed before
    the snapshot, or the first test's revert would undo the deployment itself."""
    names = set(request.fixturenames)
    if not names & {"w3", "session_w3", "deployed"}:
        return
    if "deployed" in names:
        request.getfixturevalue("deployed")
    request.getfixturevalue("w3")


@pytest.fixture(scope="session")
def deployments_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deployments")


@pytest.fixture(scope="session")
def deployed(session_w3: Web3, anvil: AnvilNode, deployments_dir: Path) -> Deployments:
    """The platform deployed once per session, as `make run` deploys it (deployments file): the
    two demo towns, 更別村 / Sarabetsu and 洞爺湖町 / Lake Toya (toyako), each with its own
    contracts (backend/deploy.py), not yet partners (partnering is tested from that state)."""
    return _deploy_once_per_run(session_w3, anvil, deployments_dir)


DEPLOY_CACHE = ARTIFACTS / "deploy-cache"


def _deploy_once_per_run(w3: Web3, anvil: AnvilNode, deployments_dir: Path) -> Deployments:
    """Deploy the platform on this worker's anvil.

    Loading another worker's saved anvil state (anvil_dumpState/loadState) was tried in stop 22
    and taken out again: the chain-clock tests failed in two full runs with it (the loaded
    chain's newest block is as old as the first worker's deploy, and tests that move the clock
    from that block can set it behind the wall clock); to be measured again on a quiet machine."""
    return deploy_platform(w3, anvil.keys[0], deployments_dir, demo_towns(partners=False))


# ---------------------------------------------------------------- databases


def alembic_upgrade(url: str, revision: str = "heads") -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)


def _create_pg_database(name: str, template: str | None = None) -> str:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
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

    def make(label: str, template: str | None = None) -> str:
        name = f"furusato_test_{RUN_ID}_{label}"
        made.append(name)
        return _create_pg_database(name, template)

    yield make
    for name in made:
        _drop_pg_database(name)


@contextlib.contextmanager
def _once_per_run(what: str) -> Iterator[Path | None]:
    """A folder shared by this run's workers for `what`, held under a lock so that the first
    worker makes it and the others wait and reuse it (None in a single process)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        yield None
        return
    cache = DEPLOY_CACHE / run / what
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield cache


@pytest.fixture(scope="session")
def pg_url(pg_database: Callable[[str], str]) -> str:
    """This worker's migrated PostgreSQL database: a copy (CREATE DATABASE ... TEMPLATE) of one
    the run's first worker migrated, instead of 40 migrations per worker."""
    with _once_per_run("pg-template") as shared:
        if shared is None:
            url = pg_database("main")
            alembic_upgrade(url)
            return url
        template = f"furusato_test_tmpl_{shared.parent.name[:12]}"
        if not (shared / "migrated").exists():
            _drop_pg_database(template)
            alembic_upgrade(_create_pg_database(template))
            (shared / "migrated").write_text(template)
        return pg_database("main", template=template)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This worker's migrated SQLite database: a copy of the file the run's first worker
    migrated."""
    path = tmp_path_factory.mktemp("sqlite") / "furusato.db"
    with _once_per_run("sqlite-template") as shared:
        if shared is None:
            alembic_upgrade(f"sqlite:///{path}")
        else:
            migrated = shared / "furusato.db"
            if not migrated.exists():
                alembic_upgrade(f"sqlite:///{shared / 'partial.db'}")
                (shared / "partial.db").rename(migrated)
            shutil.copyfile(migrated, path)
    return f"sqlite:///{path}"


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
    seqs = list(moved)
    if seqs:  # one round trip for them all
        conn.execute(
            sa.text("SELECT setval(s::regclass, 1, false) FROM unnest(CAST(:seqs AS text[])) AS s"),
            {"seqs": seqs},
        )


APPEND_ONLY_TABLES = frozenset({"audit_log"})  # a trigger refuses DELETE (migration 0001)


_EMPTYING: dict[str, tuple[sa.Engine, list[sa.Table]]] = {}


def _truncate_all(url: str) -> None:
    """Empty every table of the database at `url` after a test. The engine and the list of
    tables are kept per database for the process: a new connection and a schema inspection
    per test cost more than the emptying itself."""
    if url not in _EMPTYING:
        engine = sa.create_engine(url, pool_pre_ping=True)
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
        _EMPTYING[url] = (engine, [t for t in Base.metadata.sorted_tables if t.name in present])
    engine, tables = _EMPTYING[url]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            _truncate_pg(conn, [t.name for t in tables])
        else:
            # SQLite's audit_log triggers (migration 0051) refuse DELETE: dropped for the
            # emptying and made again as they were, in the same transaction.
            triggers = conn.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, _sql in triggers:
                conn.execute(sa.text(f'DROP TRIGGER "{name}"'))
            for t in reversed(tables):
                conn.execute(t.delete())
            for _name, sql in triggers:
                conn.execute(sa.text(sql))


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


class _CompiledTemplates(jinja2.BytecodeCache):
    """Compiled templates shared by the apps of one test process. Each app has a Jinja
    environment of its own, which compiled every template it rendered again in every test;
    a bucket is keyed by the template's name and file and checked against its source."""

    def __init__(self) -> None:
        self.code: dict[str, tuple[str, Any]] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        hit = self.code.get(bucket.key)
        if hit is not None and hit[0] == bucket.checksum:
            bucket.code = hit[1]

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.code[bucket.key] = (bucket.checksum, bucket.code)


COMPILED_TEMPLATES = _CompiledTemplates()


def _make_app(settings: Settings, **overrides: Any) -> Flask:
    # Rate-limit counters live in this run's Redis: each app counts on its own.
    overrides.setdefault("ratelimit_key_prefix", f"furusato-test-{uuid.uuid4().hex}")
    app = create_app(replace(settings, **overrides))
    app.jinja_env.bytecode_cache = COMPILED_TEMPLATES
    celery = app.extensions["celery"]
    celery.conf.task_default_queue = RUN_QUEUE
    return app


_REDIS_USED = False  # this process made Celery queues on the shared Redis (forget_run_keys)


def _purge_run_queue() -> None:
    """Drop tasks an earlier test published to this process's queue with no worker to run them
    (e.g. an outbox dispatch after commit): a later test's worker must not run them first."""
    from kombu import Connection

    global _REDIS_USED
    _REDIS_USED = True
    with Connection(REDIS_URL) as conn:
        conn.default_channel.queue_purge(RUN_QUEUE)


def forget_run_keys(url: str, run_queue: str) -> int:
    """Delete what this process's queues left on the shared Redis (the queue lists, the webhooks
    tests' queues named after it, kombu's bindings): they never expire, and every run left a
    few more on a machine whose Redis CI uses as the session left it. The number deleted.
    A worker process the webhooks tests kill leaves unacknowledged tasks, which any consumer
    still running (another xdist worker) may put back into their queue later: a full run can
    still leave those one or two lists."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{run_queue}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    except redis.RedisError:
        return 0  # a Redis gone already (scripts/test.sh stops one it started after pytest)
    finally:
        client.close()


@pytest.fixture
def make_app(base_settings: Settings, pg_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps with settings overrides; tables of every database used are emptied after.
    Each test starts with this process's Celery queue empty."""
    _purge_run_queue()
    used: set[str] = set()
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        overrides.setdefault("database_url", pg_url)
        used.add(overrides["database_url"])
        made.append(_make_app(base_settings, **overrides))
        return made[-1]

    yield make
    # Each app has its own pool: closed here, not whenever the app is garbage collected, or
    # the idle connections of past tests pile up (30 per worker seen) towards PostgreSQL's 100.
    for built in made:
        built.extensions["db"].engine.dispose()
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


def _seconds(schedule: Any) -> float:
    """A beat entry's period; 0 (every tick) for a schedule that is not a plain interval."""
    return float(schedule.total_seconds()) if hasattr(schedule, "total_seconds") else 0.0


class BeatTicker:
    """Sends the beat-scheduled tasks to the worker as `celery beat` would, ten times faster
    (`SPEEDUP`) and at least every `every` seconds: the indexer, the outbox sender and receipts
    (2-5 s) every half second, so journeys see the chain within seconds, and the slow ones at
    their own pace (the hourly projection check every 6 minutes, not twice a second). Sending
    all 22 every tick kept the worker busy with hourly work during every journey: paired runs
    of nine journey files, 94.3 / 103.3 CPU-seconds before, 84.5 / 86.7 after."""

    SPEEDUP = 10.0

    def __init__(self, app: Flask, every: float = 0.5) -> None:
        self.celery = app.extensions["celery"]
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        # A transaction anvil's automine missed is mined by hand (tests/anvil_pool.py), as the
        # next block of a real chain would take it.
        self.mines_missed = MinesMissed(app.extensions["settings"].rpc_url)

    def _run(self) -> None:
        periods = {
            e["task"]: max(self.every, _seconds(e["schedule"]) / self.SPEEDUP)
            for e in self.celery.conf.beat_schedule.values()
        }
        due = dict.fromkeys(periods, 0.0)
        while not self.stopped.wait(self.every):
            now = time.monotonic()
            for task, period in periods.items():
                if due[task] <= now:
                    self.celery.send_task(task)
                    due[task] = now + period - 0.01  # a tick's jitter does not skip one

    def __enter__(self) -> BeatTicker:
        self.mines_missed.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.mines_missed.__exit__()
        # Ticks nobody consumed would otherwise run in a later test's worker (same run queue),
        # e.g. a stray points.expire_lots before the one that test sends.
        with self.celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(self.celery.conf.task_default_queue)


@pytest.fixture
def platform(app: Flask, w3: Web3, celery_worker: Any) -> Iterator[Any]:
    """The whole platform for a journey: the app served on a free port, a real Celery worker on
    Redis, beat's tasks ticking, on the session's anvil (reverted after the test)."""
    from tests.pages import LiveServer  # a plugin module (pytest_plugins): imported there first

    with LiveServer(app) as server, BeatTicker(app):
        yield server
