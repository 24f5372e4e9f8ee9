"""A private redis-server for tests that take the broker away (stall, stop, start again).

Runs Debian's redis-server on a free port with no persistence, in a directory of the test's own,
so stopping it never touches the Redis on 6379 that other tests share.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
