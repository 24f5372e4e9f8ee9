"""Celery workers as separate processes for the webhook tests (so that one can be SIGKILLed),
configured like the test app (its database, SECRET_KEY, chain, keys), on a queue of the test's
own; and a beat that sends the app's periodic tasks to that queue at a fast pace."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from tests.anvil_pool import MinesMissed
from tests.conftest import REDIS_URL, ROOT


def start_worker(app: Any, tmp: Path, queue: str, log: Path, name: str, **env: str) -> Any:
    s = app.extensions["settings"]
    full = {
        **os.environ,
        "INSTANCE_PATH": str(tmp / "instance"),
        "SECRET_KEY": app.config["SECRET_KEY"],  # it opens the sealed signing secrets
        "MASTER_KEY": s.master_key or "",
        "DATABASE_URL": s.database_url,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "RPC_URL": s.rpc_url,
        "CHAIN_ID": "31337",
        "DEPLOYMENTS_DIR": str(s.deployments_dir),
        "CONFIRMATIONS": str(s.confirmations),
        "DEPLOYER_PRIVATE_KEY": s.deployer_private_key or "",
        "RELAYER_PRIVATE_KEYS": s.relayer_private_keys or "",
        "ROLE_PRIVATE_KEYS": s.role_private_keys or "",
        "TEST_QUEUE": queue,
        **env,
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "tests.webhooks._worker", "worker"]
            + ["--pool", "solo", "-Q", queue, "--loglevel", "WARNING", "-n", f"{name}@%h"]
            + ["--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: Any) -> None:
    if worker is not None and worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)


class Beat:
    """Sends `tasks` (default: every task of the app's beat schedule) to `queue` every
    `every` seconds, as `celery beat` would, skipping a tick while the worker is behind."""

    def __init__(
        self, app: Any, queue: str, tasks: list[str] | None = None, every: float = 0.3
    ) -> None:
        self.celery = app.extensions["celery"]
        self.queue = queue
        self.tasks = tasks or sorted({e["task"] for e in self.celery.conf.beat_schedule.values()})
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        # What anvil's automine misses is mined by hand, as BeatTicker does (tests/anvil_pool.py).
        self.mines_missed = MinesMissed(app.extensions["settings"].rpc_url)

    def _backlog(self) -> int:
        with self.celery.connection_for_write() as conn:
            return int(conn.default_channel.client.llen(self.queue))

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            if self._backlog() > len(self.tasks):
                continue
            for task in self.tasks:
                self.celery.send_task(task, queue=self.queue)

    def __enter__(self) -> Beat:
        self.mines_missed.__enter__()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.mines_missed.__exit__()
        with self.celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(self.queue)
