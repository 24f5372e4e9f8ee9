"""`make run`: the whole platform on one machine, with no server to install.

Starts anvil (chain state kept in instance/anvil-state.json), deploys what is missing, migrates
the SQLite database, loads demo data (two partner towns), then runs the web app (gunicorn), a
Celery worker and Celery beat on the embedded SQLite broker (instance/broker.db). Logs go to
instance/logs/. A web, worker or beat process that exits is started again after a backoff, with
a log line: one crash never stops the platform. With RPC_URL set (a real chain) it deploys
nothing and loads no demo data. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402

from backend.chain.anvil import DEV_KEYS, start_anvil  # noqa: E402
from backend.chain.role_config import role_addresses  # noqa: E402
from backend.chain.role_keys import DEV_ROLE_KEYS  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.core.broker import prepare_embedded  # noqa: E402

VENV_BIN = Path(sys.executable).parent
BACKOFF_FIRST = 1.0  # seconds before the first restart of a crashed process; doubles each time
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a process that ran this long has its backoff reset


def say(message: str) -> None:
    print(time.strftime("%H:%M:%S ") + message, flush=True)


class Supervised:
    """One long-running child (web, worker or beat) that is restarted when it exits."""

    def __init__(self, name: str, cmd: tuple[str, ...], env: dict[str, str], logs: Path) -> None:
        self.name, self.cmd, self.env, self.logs = name, cmd, env, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.restarts = 0
        self.delay = BACKOFF_FIRST
        self.restart_at: float | None = None

    def start(self) -> None:
        log = open(self.logs / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.started = time.monotonic()
        self.restart_at = None

    def check(self) -> None:
        """Notice an exit (schedule a restart with backoff) or restart when the time has come."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                say(f"restarting {self.name} (restart #{self.restarts})")
                self.start()
            return
        if self.proc is None or self.proc.poll() is None:
            return
        if now - self.started >= STABLE_AFTER:
            self.delay = BACKOFF_FIRST
        say(
            f"{self.name} exited (code {self.proc.returncode}); restarting in {self.delay:.0f} s "
            f"(see {self.logs / (self.name + '.log')})"
        )
        self.restart_at = now + self.delay
        self.delay = min(self.delay * 2, BACKOFF_MAX)


def _rpc(url: str, method: str, params: list[object]) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (our local anvil)
        return json.load(resp)["result"]


REAL_CHAIN_NOTE = (
    "RPC_URL is set: serving that chain as it is (no contracts deployed, no demo data loaded)"
)


def setup_steps(py: str, own_chain: bool) -> list[tuple[str, tuple[str, ...]]]:
    """The one-off steps before the platform starts, in order. On our own anvil: deploy what is
    missing, migrate, load the demo towns. With RPC_URL (a real chain, or any chain the operator
    runs): only migrate; the demo's accounts, listings and test yen never reach it."""
    steps: list[tuple[str, tuple[str, ...]]] = []
    if own_chain:
        steps.append(
            ("deploying contracts (only what is missing)", (py, "-m", "backend.deploy", "--demo"))
        )
    steps.append(("migrating the database", (str(VENV_BIN / "alembic"), "upgrade", "heads")))
    if own_chain:
        steps.append(("loading demo data", (py, "scripts/demo_data.py")))
    return steps


def main() -> int:
    port = int(os.environ.get("PORT", "5000"))
    anvil_port = int(os.environ.get("ANVIL_PORT", "8545"))
    settings = Settings.from_env()
    logs = settings.instance_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[Supervised] = []
    node = None

    def stop_all(*_: object) -> None:
        procs = [c.proc for c in children if c.proc is not None]
        for proc in reversed(procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if node is not None:
            node.stop()  # SIGTERM: anvil dumps its state to instance/anvil-state.json

    # Ctrl-C and SIGTERM both stop everything, even when the shell that started us set SIGINT
    # to "ignore" (as non-interactive shells do for background jobs).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        env = dict(os.environ)
        own_chain = "RPC_URL" not in os.environ
        if own_chain:
            print(f"starting anvil on 127.0.0.1:{anvil_port} (log: {logs / 'anvil.log'})")
            node = start_anvil(
                logs / "anvil.log",
                port=anvil_port,
                state_path=settings.instance_path / "anvil-state.json",
                extra_args=("--state-interval", "30"),
            )
            env["RPC_URL"] = node.url
            # anvil's public test keys: key 0 deploys (and then holds no role), key 1 relays
            # users' requests, keys 10-19 are the role keys, one per role (ADR 0008). On a real
            # chain these come from the environment or key files.
            env.setdefault("DEPLOYER_PRIVATE_KEY", DEV_KEYS[0])
            env.setdefault("RELAYER_PRIVATE_KEYS", DEV_KEYS[1])
            env.setdefault(
                "ROLE_PRIVATE_KEYS", ",".join(f"{n}={k}" for n, k in DEV_ROLE_KEYS.items())
            )
            env.setdefault(
                "ROLE_ADDRESSES",
                ",".join(f"{n}={Account.from_key(k).address}" for n, k in DEV_ROLE_KEYS.items()),
            )
        # Only the worker signs: the web app (and beat, and the demo loader) get the roles'
        # addresses, never their keys.
        if env.get("ROLE_PRIVATE_KEYS") and not env.get("ROLE_ADDRESSES"):
            roles = role_addresses(env["ROLE_PRIVATE_KEYS"], None)
            env["ROLE_ADDRESSES"] = ",".join(f"{n}={a}" for n, a in roles.items())
        worker_env = dict(env)
        env.pop("ROLE_PRIVATE_KEYS", None)
        env.setdefault("PUBLIC_URL", f"http://127.0.0.1:{port}")
        py = str(VENV_BIN / "python")

        def step(title: str, *cmd: str) -> None:
            print(title)
            subprocess.run(cmd, cwd=ROOT, env=env, check=True)

        if not own_chain:
            print(REAL_CHAIN_NOTE)
        for title, cmd in setup_steps(py, own_chain):
            step(title, *cmd)
            if node is not None and cmd[1:] == ("-m", "backend.deploy", "--demo"):
                # Then a block a second, as on a real chain: voting periods and confirmations
                # are counted in blocks, and automine can leave bursts pending (foundry #10122).
                _rpc(node.url, "evm_setIntervalMining", [1])

        # WAL and kombu's tables, before web, worker and beat race to create them.
        prepare_embedded(settings.celery_broker_url)

        def spawn(name: str, *cmd: str, child_env: dict[str, str] | None = None) -> None:
            child = Supervised(name, cmd, child_env or env, logs)
            child.start()
            children.append(child)

        spawn(
            "worker",
            str(VENV_BIN / "celery"),
            "-A",
            "backend.worker",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            child_env=worker_env,
        )
        spawn(
            "beat",
            str(VENV_BIN / "celery"),
            "-A",
            "backend.worker",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(settings.instance_path / "celerybeat-schedule"),
        )
        spawn(
            "web",
            str(VENV_BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--access-logfile",
            "-",
            "backend.wsgi:app",
        )

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for child in children:
                child.check()
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:  # noqa: S310 (our http URL)
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise SystemExit(f"the platform did not become healthy within 60 s; see {logs}")
        print(f"\nfurusato is running: {url}   (health: {url}/healthz, logs: {logs})")
        print("Press Ctrl-C to stop everything.", flush=True)
        while True:
            time.sleep(0.5)
            for child in children:
                child.check()
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop_all()
        print("stopped: no process left running")


if __name__ == "__main__":
    sys.exit(main())
