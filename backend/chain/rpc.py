"""The one hand-written JSON-RPC client of the chain package (http.client + json): the indexer
reads logs and headers with it, the outbox sends and watches transactions with it, the gateway
asks it for the chain id, the head and block times. One instance per thread (it keeps its
connections); errors are RpcUnavailable (a ChainUnavailable: the node did not answer) and
RpcError (the node answered with a JSON-RPC error)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import select as _select
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from backend.chain.errors import ChainUnavailable, RpcError, RpcUnavailable

__all__ = [
    "ChainUnavailable",
    "JsonRpc",
    "PendingLogs",
    "RpcClient",
    "RpcError",
    "RpcUnavailable",
]


class JsonRpc:
    """A thin JSON-RPC client (http.client + json): web3's formatters cost more than the fetch,
    and requests' machinery ~1 ms of CPU per call (measured: a batch of four headers took
    2.2 ms of CPU through requests, of which 0.2 ms was parsing), which the indexer pays for
    every chunk. Calls go over one kept-alive connection; behind an HTTP(S) proxy, which
    http.client ignores, they go through requests.

    eth_getLogs goes over a connection of its own so that the request can be sent now and its
    answer read later (`send_get_logs`): the node computes the next chunk in its own process
    while this one decodes and writes the current chunk. A thread would not do: the GIL makes
    an I/O thread wait up to a switch interval (5 ms) for every socket read while the main
    thread decodes, which serialises the two again."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self._http = requests.Session()
        self._conn: http.client.HTTPConnection | None = None  # calls other than eth_getLogs
        self._id = 0
        self._logs_conn: http.client.HTTPConnection | None = None
        self._logs_waiting: PendingLogs | None = None  # sent on _logs_conn, answer unread
        # http.client ignores HTTP(S)_PROXY: behind a proxy, calls go through requests.
        self._direct = not requests.utils.get_environ_proxies(url)
        u = urlsplit(url)
        self._https, self._host, self._port = u.scheme == "https", u.hostname or "localhost", u.port
        self._path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self._headers = {"Content-Type": "application/json"}
        if u.username is not None:
            auth = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(auth).decode()

    def close(self) -> None:
        self._http.close()
        self._drop_conn()
        self._drop_logs_conn()

    def __enter__(self) -> JsonRpc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    @staticmethod
    def _check_status(status: int) -> None:
        if status >= 500 or status == 429:
            raise RpcUnavailable(f"RPC node answered HTTP {status}")

    def _drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, payload: Any) -> Any:
        if not self._direct:
            return self._post_requests(payload)
        # A kept-alive connection the node has closed since reads as ready (EOF): replace it
        # before sending rather than resend after (a call may have side effects).
        conn = self._conn
        if conn is not None and (conn.sock is None or _select.select([conn.sock], [], [], 0)[0]):
            self._drop_conn()
        if self._conn is None:
            self._conn = self._connection()
        try:
            self._conn.request("POST", self._path, json.dumps(payload), self._headers)
            resp = self._conn.getresponse()
            status, body = resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_conn()
            raise RpcUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
        if resp.will_close:
            self._drop_conn()
        self._check_status(status)
        return json.loads(body)

    def _post_requests(self, payload: Any) -> Any:
        try:
            resp = self._http.post(
                self.url,
                data=json.dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except (TimeoutError, requests.ConnectionError, requests.Timeout) as exc:
            raise RpcUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
        self._check_status(resp.status_code)
        return resp.json()

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        data = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        if "error" in data:
            raise RpcError.of(data["error"], method)
        return data["result"]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send calls in one HTTP request; a JSON-RPC error in any of them raises RpcError."""
        if not calls:
            return []
        base = self._id + 1
        self._id += len(calls)
        payload = [
            {"jsonrpc": "2.0", "id": base + i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        data = self._post(payload)
        if isinstance(data, dict):  # the whole batch was refused
            raise RpcError.of(data.get("error", data))
        out: list[Any] = [None] * len(calls)
        for item in data:
            if "error" in item:
                raise RpcError.of(item["error"], calls[item["id"] - base][0])
            out[item["id"] - base] = item["result"]
        return out

    def batch_results(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Send calls in one HTTP request; each answer is the call's result or its RpcError
        (returned, not raised)."""
        if not calls:
            return []
        base = self._id + 1
        self._id += len(calls)
        payload = [
            {"jsonrpc": "2.0", "id": base + i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        data = self._post(payload)
        if not isinstance(data, list):  # the whole batch was refused
            err = data.get("error") if isinstance(data, dict) else None
            refused = RpcError(0, "bad batch") if err is None else RpcError.of(err)
            return [refused] * len(calls)
        out: list[Any] = [RpcError(0, "missing batch answer")] * len(calls)
        for item in data:
            i = item.get("id") if isinstance(item, dict) else None
            if not isinstance(i, int) or not 0 <= i - base < len(calls):
                continue
            err = item.get("error")
            out[i - base] = (
                item.get("result") if err is None else RpcError.of(err, calls[i - base][0])
            )
        return out

    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

    def chain_now(self) -> int:
        """The chain's clock in Unix seconds: the timestamp the next block will carry, as the
        node's pending block says (anvil and geth build one), and never less than the latest
        block's (nodes that answer no pending block). Deadlines a contract checks against
        `block.timestamp` (permits, forward requests) start from here, not from this server's
        wall clock: a test chain moved with evm_increaseTime, or a node with a skewed clock,
        disagrees with it. The latest block alone lags on an idle automining node (anvil's
        next block is stamped with its clock, however long ago the last one was)."""
        blocks = self.batch_results(
            [
                ("eth_getBlockByNumber", ["pending", False]),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        )
        stamps = [int(b["timestamp"], 16) for b in blocks if isinstance(b, dict)]
        if not stamps:
            raise RpcUnavailable("the node answered no pending or latest block")
        return max(stamps)

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber", []), 16)

    def headers(self, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        return self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])

    def get_logs(self, addresses: list[str], frm: int, to: int) -> list[dict[str, Any]]:
        """eth_getLogs; a range the node refuses (too many results) is split in halves."""
        return self.send_get_logs(addresses, frm, to).result()

    def send_get_logs(self, addresses: list[str], frm: int, to: int) -> PendingLogs:
        """Send eth_getLogs now; PendingLogs.result() reads the answer. One request at a time:
        sending another drops an unread one."""
        pending = PendingLogs(self, addresses, frm, to)
        if not self._direct:
            pending.logs = self._get_logs_split(addresses, frm, to)
            return pending
        if self._logs_waiting is not None:
            self._drop_logs_conn()  # HTTP/1.1 answers come in order: drop the unread one
        try:
            self._send_logs_request(pending)
        except ChainUnavailable as exc:
            pending.error = exc  # raised by result(), like any other failure of the call
        return pending

    def _get_logs_split(self, addresses: list[str], frm: int, to: int) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self.call(
                "eth_getLogs", [{"address": addresses, "fromBlock": hex(frm), "toBlock": hex(to)}]
            )
            return result
        except RpcError:
            if to <= frm:
                raise
            mid = (frm + to) // 2
            return self._get_logs_split(addresses, frm, mid) + self._get_logs_split(
                addresses, mid + 1, to
            )

    def _send_logs_request(self, pending: PendingLogs) -> None:
        self._id += 1
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": self._id,
                "method": "eth_getLogs",
                "params": [
                    {
                        "address": pending.addresses,
                        "fromBlock": hex(pending.frm),
                        "toBlock": hex(pending.to),
                    }
                ],
            }
        )
        # A kept-alive connection may have been closed by the node since: then send once more
        # on a new one (eth_getLogs has no side effects); result() may do the same.
        reused = self._logs_conn is not None
        for last in (not reused, True):
            if self._logs_conn is None:
                self._logs_conn = self._connection()
            try:
                self._logs_conn.request("POST", self._path, body, self._headers)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_logs_conn()
                if last:
                    raise RpcUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
                continue
            self._logs_waiting = pending
            pending.resend = reused and not last
            return

    def _read_logs_answer(self, pending: PendingLogs) -> bytes:
        if self._logs_waiting is not pending or self._logs_conn is None:
            raise RpcUnavailable("eth_getLogs answer dropped (another request was sent)")
        try:
            resp = self._logs_conn.getresponse()
            status, body = resp.status, resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self._drop_logs_conn()
            if not pending.resend:
                raise RpcUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
            pending.resend = False
            self._send_logs_request(pending)
            return self._read_logs_answer(pending)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_logs_conn()
            raise RpcUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
        self._logs_waiting = None
        if resp.will_close:
            self._drop_logs_conn()
        self._check_status(status)
        return body

    def _drop_logs_conn(self) -> None:
        self._logs_waiting = None
        if self._logs_conn is not None:
            self._logs_conn.close()
            self._logs_conn = None


class PendingLogs:
    """An eth_getLogs request sent by JsonRpc.send_get_logs, answer not read yet."""

    def __init__(self, rpc: JsonRpc, addresses: list[str], frm: int, to: int) -> None:
        self.rpc, self.addresses, self.frm, self.to = rpc, addresses, frm, to
        self.logs: list[dict[str, Any]] | None = None
        self.body: bytes | None = None  # the answer, read and not parsed yet
        self.error: Exception | None = None
        self.resend = False  # sent on a reused connection: may be resent once

    @property
    def unread(self) -> bool:
        """Sent and its answer still on the connection (which can take no other request)."""
        return self.logs is None and self.body is None and self.error is None

    def cancel(self) -> None:
        """Forget the request; an unread answer is dropped with its connection."""
        if self.logs is None and self.rpc._logs_waiting is self:
            self.rpc._drop_logs_conn()
        self.error = RpcUnavailable("eth_getLogs cancelled")

    def read(self) -> None:
        """Read the answer off the connection (not parsed yet), so that it can take the next
        request; a failure is kept and raised by result()."""
        if self.unread:
            try:
                self.body = self.rpc._read_logs_answer(self)
            except ChainUnavailable as exc:
                self.error = exc

    def result(self) -> list[dict[str, Any]]:
        """The logs (read and parsed once); a range the node refuses (too many results) is
        fetched again in halves."""
        if self.logs is None:
            self.read()
            if self.error is not None:
                raise self.error
            data = json.loads(self.body or b"null")
            self.body = None
            if "error" in data:
                if self.to <= self.frm:
                    raise RpcError.of(data["error"], "eth_getLogs")
                self.logs = self.rpc._get_logs_split(self.addresses, self.frm, self.to)
            else:
                self.logs = data["result"]
        return self.logs


class RpcClient:
    """The JsonRpc of the calling thread, for objects that threads share (the outbox service,
    the gateway): a JsonRpc keeps its connections and is for one thread. `batch` answers each
    call's result or its RpcError, not raised (a batch of transactions is judged one by one).

    A connection the node closed or reset (or refused) is retried once on a fresh one: every
    call sent through here is safe to repeat (a re-sent transaction is "already known"). A
    timeout is not retried. An answer that is not JSON reads as the node not answering."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._local = threading.local()

    def _rpc(self) -> JsonRpc:
        rpc: JsonRpc | None = getattr(self._local, "rpc", None)
        if rpc is None:
            rpc = self._local.rpc = JsonRpc(self.url, timeout=self.timeout)
        return rpc

    def _send(self, fn: Callable[[JsonRpc], Any]) -> Any:
        try:
            try:
                return fn(self._rpc())
            except RpcUnavailable as exc:
                if not _dropped(exc.__cause__):
                    raise
                return fn(self._rpc())  # JsonRpc dropped the connection: a fresh one
        except ValueError as exc:  # json.loads of the answer
            raise RpcUnavailable("RPC endpoint answered with something other than JSON") from exc

    def call(self, method: str, params: list[Any]) -> Any:
        """One call; raises RpcUnavailable or RpcError."""
        return self._send(lambda rpc: rpc.call(method, params))

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Many calls in one request; each result is a value or an RpcError (not raised)."""
        return self._send(lambda rpc: rpc.batch_results(calls))

    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

    def chain_now(self) -> int:
        """The chain's clock in Unix seconds (JsonRpc.chain_now, on this thread's connection)."""
        return int(self._send(lambda rpc: rpc.chain_now()))

    def close(self) -> None:
        rpc: JsonRpc | None = getattr(self._local, "rpc", None)
        if rpc is not None:
            rpc.close()
            self._local.rpc = None


def _dropped(cause: BaseException | None) -> bool:
    """Whether a failed request's cause is a connection the node closed, reset or refused
    (not a timeout)."""
    if isinstance(cause, requests.Timeout | TimeoutError):
        return False
    return isinstance(
        cause, ConnectionError | http.client.RemoteDisconnected | requests.ConnectionError
    )


# web3.py asks the node for eth_chainId before each call and each transaction it builds (its
# validation middleware): half of a contract call's round trips. A chain's id never changes
# under one URL, so it is the one answer kept. Other answers are not cached: a test chain
# rewinds (evm_revert), and a cached transaction or block would outlive it.
_CACHED = {"eth_chainId"}


def web3_provider(url: str, timeout: float = 30.0, session: requests.Session | None = None) -> Any:
    """An HTTPProvider for web3.py with the chain id cached, and what requests reads from the
    environment for `url` (its proxy, a CA bundle) read once, not on every request (requests'
    `trust_env`: measured at a tenth of a chain test's time)."""
    from web3 import Web3  # here, not at the top: JsonRpc's users need no web3

    if session is None:
        session = requests.Session()
        session.proxies.update(requests.utils.get_environ_proxies(url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        session.trust_env = False
    return Web3.HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        session=session,
        cache_allowed_requests=True,
        cacheable_requests=_CACHED,  # type: ignore[arg-type]
    )
