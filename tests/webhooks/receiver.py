"""A webhook receiver for tests: a real HTTP server on loopback, in a thread, that records every
POST (headers and body) and answers with the statuses it is given (then 200). It can hold a
request open (to kill a worker while its POST is in flight), go down and come back up on the
same port, and it checks signatures as a service would: with the `standardwebhooks` library."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: collections.deque[int] = collections.deque()
        self.lock = threading.Lock()
        self.hold_at: int | None = None  # the n-th request (1-based) is held until released
        self.held = threading.Event()
        self.release = threading.Event()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---------------------------------------------------------------- server

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                size = int(self.headers.get("content-length") or 0)
                got = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(size),
                )
                with receiver.lock:
                    receiver.received.append(got)
                    n = len(receiver.received)
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                if receiver.hold_at == n:
                    receiver.held.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender died while we held its request

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.server = server
        self.port = server.server_port
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until `start()` again (same port)."""
        if self.server is not None:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    # ---------------------------------------------------------------- what it saw

    def ids(self) -> list[str]:
        with self.lock:
            return [r.webhook_id for r in self.received]

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(self.ids())

    def unique(self, secret: str) -> dict[str, Any]:
        """What a careful service keeps: each verified webhook once, by webhook-id; raises
        when a signature does not verify."""
        kept: dict[str, Any] = {}
        with self.lock:
            seen = list(self.received)
        for r in seen:
            data = Webhook(secret).verify(r.body, r.headers)
            kept.setdefault(r.webhook_id, data)
        return kept

    def wait_for(self, done: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out; received {self.counts()}"
            time.sleep(0.02)
