"""`make run`: the whole platform on one machine, with no server to install.

Starts anvil (chain state kept in instance/anvil-state.json), deploys what is missing, migrates
the SQLite database, loads demo data, then runs the web app (gunicorn), a Celery worker and Celery
beat on the filesystem broker. Logs go to instance/logs/. Ctrl-C stops every process it started.
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

VENV_BIN = Path(sys.executable).parent


def _rpc(url: str, method: str, params: list[object]) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (our local anvil)
        return json.load(resp)["result"]


def main() -> int:
    port = int(os.environ.get("PORT", "5000"))
    anvil_port = int(os.environ.get("ANVIL_PORT", "8545"))
    settings = Settings.from_env()
    logs = settings.instance_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    node = None

    def stop_all(*_: object) -> None:
        for proc in reversed(children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in children:
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

        if own_chain:
            step(
                "deploying contracts (only what is missing)",
                py,
                "-m",
                "backend.chain.deploy",
                "--demo",
            )
            # Then a block a second, as on a real chain: voting periods and confirmations are
            # counted in blocks, and automine can leave bursts pending (foundry #10122).
            _rpc(node.url, "evm_setIntervalMining", [1])
        step("migrating the database", str(VENV_BIN / "alembic"), "upgrade", "heads")
        step("loading demo data", py, "scripts/demo_data.py")

        def spawn(name: str, *cmd: str, child_env: dict[str, str] | None = None) -> None:
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            children.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=child_env or env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            log.close()

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
            for proc in children:
                if proc.poll() is not None:
                    raise SystemExit(f"a process exited early (code {proc.returncode}); see {logs}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:  # noqa: S310 (our http URL)
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            raise SystemExit(f"the platform did not become healthy within 60 s; see {logs}")
        print(f"\nfurusato is running: {url}   (health: {url}/healthz, logs: {logs})")
        print("Press Ctrl-C to stop everything.")
        while True:
            time.sleep(1)
            for proc in children:
                if proc.poll() is not None:
                    raise SystemExit(f"a process exited (code {proc.returncode}); see {logs}")
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop_all()
        print("stopped: no process left running")


if __name__ == "__main__":
    sys.exit(main())
