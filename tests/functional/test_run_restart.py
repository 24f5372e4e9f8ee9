"""Issue 11 §7: `make run` (scripts/run.py) restarts a crashed worker or beat, with a log line,
instead of stopping the platform; the restarted worker runs the beat's tasks again.

Runs scripts/run.py itself (what `make run` runs after `make setup`), in a session of its own,
on free ports and a private instance directory."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.processes import free_port
from tests.functional.test_make_run import _processes_with

ROOT = Path(__file__).resolve().parents[2]


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def _role_pids(marker: str, role: str) -> list[int]:
    """PIDs of the run's celery `role` (worker or beat) processes."""
    found = []
    for pid in _processes_with(marker):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"celery") for a in argv) and role.encode() in argv:
            found.append(pid)
    return found


def _wait(what: str, check, log: Path, seconds: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen within {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.mark.heavy  # the whole platform
def test_run_restarts_a_killed_worker_and_beat_and_keeps_serving(tmp_path: Path) -> None:
    port, anvil_port = free_port(), free_port()
    instance = tmp_path / "instance"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "RPC_URL")
    }
    env.update(
        PORT=str(port),
        ANVIL_PORT=str(anvil_port),
        INSTANCE_PATH=str(instance),
        DEPLOYMENTS_DIR=str(tmp_path / "deployments"),
        PYTHONPATH=str(ROOT),
    )
    marker = f"INSTANCE_PATH={instance}"
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait("furusato is running", lambda: "furusato is running" in log.read_text(), log, 180)
        health = _health(port)
        assert health["status"] == "ok", health
        assert health["broker"]["transport"] == "sqla"
        assert health["broker"]["url"].endswith(f"{instance.resolve()}/broker.db")

        for role in ("worker", "beat"):
            (old,) = _wait(f"the {role}", lambda r=role: _role_pids(marker, r), log)
            killed_at = dt.datetime.now(dt.UTC)
            os.kill(old, signal.SIGKILL)
            _wait(
                f"{role} exit log line",
                lambda r=role: f"{r} exited (code -9); restarting in" in log.read_text(),
                log,
            )
            new = _wait(
                f"a new {role}",
                lambda r=role, o=old: [p for p in _role_pids(marker, r) if p != o],
                log,
            )
            assert old not in new and proc.poll() is None
            assert f"restarting {role} (restart #1)" in log.read_text()

        # The restarted pair works: beat's heartbeat task ran on the new worker after the kills.
        def beat_after_kill() -> bool:
            # A loaded machine can time the database check out (SQLite busy with the
            # restarted pair): that answer says "down", not "no heartbeat"; ask again.
            seen = _health(port)["db"].get("worker_seen_at")
            if seen is None:
                return False
            at = dt.datetime.fromisoformat(seen)
            return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) > killed_at

        _wait("a heartbeat from the restarted worker", beat_after_kill, log, 60)
        assert _health(port)["status"] == "ok"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    assert "stopped: no process left running" in log.read_text(), log.read_text()[-3000:]
    assert _processes_with(marker) == []
