"""Local processes for the benchmarks and the process-level tests: a free port, a poll with a
deadline, and a long-running process in a process group of its own (stopped with its children).

Also a private redis-server for the tests that take the broker away (stall, stop, start again)
and the benchmarks that want a Redis of their own: Debian's redis-server on a free port with no
persistence, in a directory of its own, so stopping it never touches the Redis on 6379 that
other runs share.

One copy for bench/rush_env.py, bench/confirm_platform.py, bench/web_env.py, bench/soak.py and
the tests (make run, the recipes, the multi-process deployment, the broker outage), which each
had their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 300.0, every: float = 0.3
) -> Any:
    """Poll `check` until it returns something truthy and return that; raise TimeoutError
    naming `what` after `timeout` seconds. Waits for a state, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting for {what} after {timeout:.0f} s")
        time.sleep(every)


class ProcessExited(RuntimeError):
    """A process that should still run has exited (the message ends with its log's tail)."""


class Proc:
    """One long-running process, its output in `logs/<name>.log`, in a process group of its own
    so that `stop()` ends its children too (gunicorn's workers, Celery's pool)."""

    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], logs: Path, *, append: bool = False
    ) -> None:
        self.name, self.log = name, logs / f"{name}.log"
        with open(self.log, "ab" if append else "wb") as out:
            self.popen = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def alive(self) -> bool:
        """True while it runs; raises ProcessExited with its log's tail once it has exited (for
        use inside a `wait_for` check: a crash fails at once instead of at the deadline)."""
        if self.popen.poll() is not None:
            raise ProcessExited(
                f"{self.name} exited ({self.popen.returncode}):\n{self.text()[-3000:]}"
            )
        return True

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to its group, SIGKILL after `timeout` seconds; its exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            return self.popen.wait()


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not _pong(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.workdir / 'redis.log'}")
            time.sleep(0.05)
        return self

    def stall(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but never answered (a hung broker)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """Kill it (its queued messages are lost: it keeps nothing on disk)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)  # also ends a stalled process
            self.proc.wait(10)
        self.proc = None
