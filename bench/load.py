"""A small HTTP/1.1 load generator (asyncio, standard library only) for the web benchmarks.

`run_load(url, seconds=..., connections=...)` keeps `connections` requests in flight for
`seconds`, each on its own connection (reused when the server keeps it alive; gunicorn's sync
workers close it after every answer, as they do for real clients), and returns the count,
the failures and the latency of every answer (from sending the request to the end of its body).
One event loop in the benchmark's process: the client costs the server's CPU as little as a
Python client can, and the static-file baseline is measured with the same client.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    url: str
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # connection errors by type

    @property
    def ok(self) -> int:
        """Answers 200 (a redirect to the log-in page is not the page)."""
        return self.statuses.get(200, 0)

    @property
    def failed(self) -> int:
        return sum(self.errors.values()) + sum(self.statuses.values()) - self.ok

    @property
    def rate(self) -> float:
        """Successful answers per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in milliseconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) after reading one whole response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:  # no length: the body ends with the connection
        await reader.read()
        return status, False
    keep = headers.get("connection") != "close"
    return status, keep


async def _worker(
    conn: _Conn, request: bytes, deadline: float, result: LoadResult, record: bool
) -> None:
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            reader, writer = await conn.ensure()
            writer.write(request)
            await writer.drain()
            status, keep = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            conn.close()
            if record:
                result.errors[type(e).__name__] += 1
            continue
        if not keep:
            conn.close()
        if record and time.perf_counter() <= deadline:
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] += 1
    conn.close()


async def _load(
    url: str, seconds: float, connections: int, cookie: str | None, warmup: float
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept-Language: ja"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    result = LoadResult(url, seconds)
    conns = [_Conn(host, port) for _ in range(connections)]
    if warmup > 0:
        end = time.perf_counter() + warmup
        await asyncio.gather(*(_worker(c, request, end, result, False) for c in conns))
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_worker(c, request, deadline, result, True) for c in conns))
    result.seconds = time.perf_counter() - start
    return result


def run_load(
    url: str,
    *,
    seconds: float = 10.0,
    connections: int = 16,
    cookie: str | None = None,
    warmup: float = 1.0,
) -> LoadResult:
    """GET `url` with `connections` concurrent clients for `seconds` (after `warmup` seconds
    not counted), with the session `cookie` when given."""
    return asyncio.run(_load(url, seconds, connections, cookie, warmup))
