"""The platform bench/confirm.py measures: what `make run` starts (anvil mining a block a second,
the contracts and demo towns, gunicorn, Celery beat and one solo worker), in a private
directory on free ports, with the worker restartable in another mode (BLOCK_WATCH_INTERVAL) while
the chain, the database, the web app and beat stay up.

SQLite and the embedded SQLite broker by default, as `make run`; `db="postgres"` uses a fresh
PostgreSQL database on the local server and `broker="redis"` a Redis database of its own
(REDIS_DB), as a server would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from eth_account import Account

from backend.chain.anvil import DEV_KEYS, AnvilNode, start_anvil
from backend.chain.role_keys import DEV_ROLE_KEYS
from backend.core.broker import default_broker_url, prepare_embedded
from bench.processes import Proc, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
REDIS_DB = 14  # the bench's own Redis database: no test run's worker consumes its queue
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (our local anvil)
        return json.load(resp)["result"]


def _ready(proc: Proc, since: int) -> bool:
    """The worker runs and has logged " ready." after byte `since` of its log (it consumes)."""
    return proc.alive() and b" ready." in proc.log.read_bytes()[since:]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:  # not listening yet, or 503 (HTTPError is an OSError)
        return False


def _pg_database(name: str, drop: bool = False) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not drop:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


class Platform:
    """Start with `up()`, switch the worker with `worker(interval)`, end with `down()`."""

    def __init__(
        self, db: str = "sqlite", broker: str = "embedded", block_time: int = 1, webs: int = 1
    ) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="furusato-confirm-"))
        self.logs = self.work / "logs"
        self.logs.mkdir()
        # One gunicorn (2 workers, as `make run`) per web process, on ports of their own.
        self.ports, self.anvil_port = [free_port() for _ in range(webs)], free_port()
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.port, self.url = self.ports[0], self.urls[0]
        self.block_time = block_time
        self.db, self.broker = db, broker
        self.pg_name = f"furusato_confirm_{uuid.uuid4().hex[:8]}" if db == "postgres" else ""
        self.node: AnvilNode | None = None
        self.procs: dict[str, Proc] = {}
        instance = self.work / "instance"
        unset = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RPC_URL")
        env = {k: v for k, v in os.environ.items() if k not in unset and k != "SMTP_HOST"}
        roles = ",".join(f"{n}={Account.from_key(k).address}" for n, k in DEV_ROLE_KEYS.items())
        env.update(
            INSTANCE_PATH=str(instance),
            DEPLOYMENTS_DIR=str(self.work / "deployments"),
            PYTHONPATH=str(ROOT),
            PROXY_HOPS="1",  # each bench visitor comes from an address of its own
            CONFIRMATIONS="2",
            RPC_URL=f"http://127.0.0.1:{self.anvil_port}",
            PUBLIC_URL=self.url,
            DEPLOYER_PRIVATE_KEY=DEV_KEYS[0],
            RELAYER_PRIVATE_KEYS=DEV_KEYS[1],
            ROLE_ADDRESSES=roles,
        )
        if self.pg_name:
            env["DATABASE_URL"] = _pg_database(self.pg_name)
            # Only the embedded SQLite database gets a generated master key (backend/config.py).
            env["MASTER_KEY"] = "bench:" + base64.b64encode(os.urandom(32)).decode()
        if broker == "redis":
            env["CELERY_BROKER_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
        self.env = env  # web, beat, setup: the roles' addresses, never their keys
        self.worker_env = dict(env)
        self.worker_env["ROLE_PRIVATE_KEYS"] = ",".join(
            f"{n}={k}" for n, k in DEV_ROLE_KEYS.items()
        )
        self.database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'furusato.db'}"

    # ---------------------------------------------------------------- processes

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        # Appended: a restarted worker keeps its earlier log (the figures' runs are compared).
        self.procs[name] = Proc(name, cmd, env, self.logs, append=True)

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.stop(30)

    def _step(self, title: str, *cmd: str) -> None:
        print(f"  {title}", flush=True)
        with open(self.logs / "setup.log", "ab") as log:
            subprocess.run(cmd, cwd=ROOT, env=self.env, check=True, stdout=log, stderr=log)

    def up(self) -> None:
        """Chain, contracts, database, demo data, web and beat (the worker: `worker()`)."""
        self.node = start_anvil(self.logs / "anvil.log", port=self.anvil_port)
        py = sys.executable
        self._step("deploying contracts", py, "-m", "backend.deploy", "--demo")
        # Then a block a second, as on a real chain (and as `make run` does).
        _rpc(self.node.url, "evm_setIntervalMining", [self.block_time])
        self._step("migrating the database", str(VENV_BIN / "alembic"), "upgrade", "heads")
        self._step("loading demo data", py, "scripts/demo_data.py")
        if self.broker == "embedded":
            prepare_embedded(default_broker_url(self.work / "instance"))
        for i, port in enumerate(self.ports):
            self._spawn(
                "web" if i == 0 else f"web{i + 1}",
                [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
                + ["backend.wsgi:app"],
                self.env,
            )
        self._spawn(
            "beat",
            [str(VENV_BIN / "celery"), "-A", "backend.worker", "beat", "--loglevel", "INFO"]
            + ["--schedule", str(self.work / "instance" / "celerybeat-schedule")],
            self.env,
        )
        for url in self.urls:
            wait_for(f"{url}/healthz (logs: {self.logs})", partial(_healthy, url), 120)

    def worker(self, interval: float, count: int = 1) -> None:
        """(Re)start `count` workers (solo pool, named worker1@, worker2@ ...) with
        BLOCK_WATCH_INTERVAL=interval (0: beat ticks only) and wait until each consumes."""
        for name in [n for n in self.procs if n.startswith("worker")]:
            self._stop(name)
        env = dict(self.worker_env, BLOCK_WATCH_INTERVAL=str(interval))
        started: dict[str, int] = {}
        for i in range(count):
            name = "worker" if i == 0 else f"worker{i + 1}"
            log = self.logs / f"{name}.log"
            started[name] = log.stat().st_size if log.exists() else 0
            self._spawn(
                name,
                [str(VENV_BIN / "celery"), "-A", "backend.worker", "worker", "--pool", "solo"]
                + ["--loglevel", "INFO", "-n", f"worker{i + 1}@%h"],
                env,
            )
        for name, start in started.items():
            proc = self.procs[name]
            wait_for(f"{name} to consume (log: {proc.log})", partial(_ready, proc, start), 120)

    def setup(self, people: int, points: int) -> dict[str, Any]:
        """bench/confirm_setup.py in the platform's environment (the worker must run)."""
        out = subprocess.run(
            [sys.executable, "-m", "bench.confirm_setup", str(people), str(points)],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def exits(self) -> dict[str, int]:
        """Processes that ended on their own (a crash the figures must not hide)."""
        return {n: p.popen.returncode for n, p in self.procs.items() if not p.running()}

    def down(self, keep: bool = False) -> None:
        """Stop everything; the directory (logs) stays when `keep` (a failed run)."""
        for name in list(self.procs):
            self._stop(name)
        if self.node is not None:
            self.node.stop()
        if self.pg_name:
            _pg_database(self.pg_name, drop=True)
        if self.broker == "redis":
            with contextlib.suppress(Exception):
                import redis

                redis.Redis(db=REDIS_DB).flushdb()
        if keep:
            print(f"logs kept in {self.logs}", flush=True)
        else:
            shutil.rmtree(self.work, ignore_errors=True)
