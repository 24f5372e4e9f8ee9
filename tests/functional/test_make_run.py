"""`make run` (scripts/run.py): the whole platform comes up healthy, Ctrl-C leaves no process
behind, and a second run deploys nothing new and keeps the data. In the second run the worker
and then beat are killed (issue 11 §7): run.py restarts each, with a log line, instead of
stopping the platform, and the restarted worker runs the beat's tasks again.

One test for both: each start of the whole platform costs about 40 busy CPU-seconds, so the
restart is checked on the second start rather than on a start of its own."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from bench.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def _processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries `marker` (every process run.py starts inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in env:
            found.append(int(entry.name))
    return found


def _ignore_sigint() -> None:
    # What a non-interactive shell does to a background job: the worst case for Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_until_healthy(env: dict[str, str], port: int, log: Path) -> tuple[subprocess.Popen, dict]:
    """`make run`, as the README says, in a process group of its own (like a terminal's)."""
    out = open(log, "wb")  # noqa: SIM115 - the child writes to it until it exits
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_ignore_sigint,  # noqa: PLW1509 - single-threaded here
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                return proc, json.load(resp)
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("not healthy within 120 s:\n" + log.read_text())


def _ctrl_c(proc: subprocess.Popen, log: Path) -> None:
    """Ctrl-C in a terminal: SIGINT to the whole foreground process group (make and run.py)."""
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(30)
    assert "stopped: no process left running" in log.read_text(), log.read_text()


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


def _kill_worker_and_beat_and_see_them_restarted(marker: str, port: int, log: Path) -> None:
    """SIGKILL the worker, then beat: each comes back (log lines), the platform keeps running,
    and the restarted pair's heartbeat task runs after the kills."""
    killed_at = dt.datetime.now(dt.UTC)
    for role in ("worker", "beat"):
        (old,) = _wait(f"the {role}", lambda r=role: _role_pids(marker, r), log)
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
        assert old not in new
        assert f"restarting {role} (restart #1)" in log.read_text()

    def beat_after_kill() -> bool:
        # A loaded machine can time the database check out (SQLite busy with the restarted
        # pair): that answer says "down", not "no heartbeat"; ask again.
        seen = _health(port)["db"].get("worker_seen_at")
        if seen is None:
            return False
        at = dt.datetime.fromisoformat(seen)
        return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) > killed_at

    _wait("a heartbeat from the restarted worker", beat_after_kill, log, 60)
    assert _health(port)["status"] == "ok"


@pytest.mark.heavy  # the whole platform
def test_make_run_comes_up_stops_cleanly_restarts_with_its_data_and_its_crashed_processes(
    tmp_path,
):
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
    )
    marker = f"INSTANCE_PATH={instance}"

    proc, health = _run_until_healthy(env, port, tmp_path / "run1.log")
    try:
        assert health["status"] == "ok"
        assert health["chain"]["chain_id"] == 31337 and health["chain"]["contracts_deployed"]
        assert health["db"]["dialect"] == "sqlite"
        assert health["broker"]["transport"] == "sqla"  # the embedded SQLite broker
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert "更別村" in resp.read().decode()
        assert len(_processes_with(marker)) >= 5  # run.py, anvil, web (+workers), worker, beat
    finally:
        _ctrl_c(proc, tmp_path / "run1.log")
    assert _processes_with(marker) == []
    deployments = json.loads((tmp_path / "deployments" / "31337.json").read_text())

    started = time.monotonic()
    proc, health = _run_until_healthy(env, port, tmp_path / "run2.log")
    try:
        assert health["status"] == "ok"
        assert time.monotonic() - started < 60
        assert health["broker"]["url"].endswith(f"{instance.resolve()}/broker.db")
        _kill_worker_and_beat_and_see_them_restarted(marker, port, tmp_path / "run2.log")
        assert proc.poll() is None
    finally:
        _ctrl_c(proc, tmp_path / "run2.log")
    assert _processes_with(marker) == []
    second_log = (tmp_path / "run2.log").read_text()
    assert "deployed " not in second_log  # the chain state was kept: nothing redeployed
    assert json.loads((tmp_path / "deployments" / "31337.json").read_text()) == deployments
