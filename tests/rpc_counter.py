"""A JSON-RPC proxy that counts calls: put between the app and anvil, it forwards every request
unchanged and records each call's method (every call of a batch counts), whichever client made
it (web3's provider, backend.chain.rpc, requests). Tests read `calls` around a page render:
counting at the wire catches a call however the code reaches the node.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class RpcCounter:
    """`url` is the proxy's address; `calls` every method seen, in order."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients expect

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                counter._record(body)
                status, answer = counter._forward(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"method": "<not JSON>"}
        items = payload if isinstance(payload, list) else [payload]
        with self._lock:
            self.calls.extend(str(item.get("method")) for item in items)

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        conn = getattr(self._local, "conn", None)
        for attempt in (1, 2):
            if conn is None:
                conn = http.client.HTTPConnection(
                    self.upstream.hostname, self.upstream.port, timeout=60
                )
                self._local.conn = conn
            try:
                conn.request(
                    "POST", self.upstream.path or "/", body, {"Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[str]]:
        """The calls made inside the block (a list filled as they happen)."""
        with self._lock:
            start = len(self.calls)
        seen: list[str] = []
        try:
            yield seen
        finally:
            with self._lock:
                seen.extend(self.calls[start:])

    def __enter__(self) -> RpcCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
