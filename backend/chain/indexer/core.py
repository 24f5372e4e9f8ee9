"""The reorg-safe event indexer: logs of every watched contract up to head - confirmations.

How it works (see docs/adr/0004-indexer-reorgs.md):

- Watched contracts are every entry of deployments/<chain_id>.json plus rows that domains add
  at runtime with `watch_contract` (e.g. a collection created by a factory). Each has its own
  `synced_to` block, so a contract added later backfills from its own from_block while the
  others wait; a fresh database backfills from each deployment block.
- One DB transaction per step: lock the chain's cursor row (SELECT ... FOR UPDATE SKIP LOCKED
  on PostgreSQL; a lease on SQLite), check the stored block hashes against the chain, then for
  each chunk (one raw eth_getLogs of `chunk_size` blocks) until the transaction holds
  `batch_events` events: decode the logs from a precomputed topic0 map (single-word types are
  sliced directly, others go through eth_abi), COPY them into `chain_events`, check the chunk
  against headers read after its logs; then record the blocks (hash and parent hash), run the
  domain handlers, advance the cursors, commit. A worker killed mid-transaction leaves nothing
  behind; the primary key (chain_id, block_number, log_index) and UNIQUE(chain_id, tx_hash,
  log_index) make a second insert of the same log fail the transaction rather than duplicate
  it.
- Throughput: up to two chunks' eth_getLogs are requested ahead, so the node computes them
  while this process decodes and PostgreSQL works through the COPY (_Prefetcher; each is
  re-checked against the chain inside the transaction that uses it). Logs are turned straight
  into COPY lines; a ChainEvent is only built for handlers that want one, and the token
  projection folds a transaction's chunks into one upsert per (token, holder).
- Reorgs: before every transaction the highest stored block's hash is compared with the chain. On a
  mismatch the indexer walks down the stored blocks to the highest one the chain still has
  (the common ancestor), and in ONE transaction tells every handler to `revert` the events
  above it (newest first), deletes those events and blocks, and moves the cursors back; the
  next chunks re-index the new branch.
- Handlers are registered per event name (optionally per contract key, artifact name or
  address) with an `apply` and a `revert` function. Both receive the DB session of the
  indexing transaction and the events in chain order (reverse chain order for `revert`), so a
  handler's effects commit or roll back with the events. We chose revert hooks over rebuilding
  projections from scratch because a rebuild costs O(history) on every reorg, while a revert
  costs O(depth) and the common case (a 1-2 block reorg) touches a handful of rows.
- Pending: logs above head - confirmations are kept in `chain_pending_events`, replaced on every
  pass, so pages can show "pending" until the event is confirmed and handled.

Only this package talks to the chain: domains see `ChainEvent` and plain functions.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import http.client
import json
import logging
import os
import re
import select as _select
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from backend.chain.gateway import ChainUnavailable
from backend.chain.indexer_models import (
    ChainBlock,
    ChainCursor,
    ChainEventRecord,
    Hash32,
    PendingEventRecord,
    ReconciliationReport,
    TokenBalance,
    TokenOwner,
    WatchedContract,
)
from backend.chain.registry import RegistryError, artifact, load_deployments

log = logging.getLogger(__name__)
ZERO_ADDRESS = "0x" + "00" * 20


class RpcError(RuntimeError):
    """The node answered with a JSON-RPC error."""


class IndexerError(RuntimeError):
    """The indexer cannot go on (e.g. a contract's artifact is unknown)."""


# ---------------------------------------------------------------- what domains see


@dataclass(frozen=True)
class ChainEvent:
    """A decoded log. `args` holds Python ints, checksummed addresses and 0x-hex bytes."""

    chain_id: int
    contract_key: str
    contract_address: str
    contract_name: str  # the artifact, e.g. "RegionPoints"
    event_name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    confirmed: bool = True


HandlerFn = Callable[[Session, Sequence[ChainEvent]], None]


@dataclass(frozen=True)
class Handler:
    event_name: str
    apply: HandlerFn
    revert: HandlerFn
    contract: str | None = None  # a contract key, artifact name or address; None: any
    fold: _Fold | None = field(default=None, compare=False)  # see _Fold

    def matches(self, ev: ChainEvent) -> bool:
        return self.matches_source(
            ev.event_name, ev.contract_key, ev.contract_name, ev.contract_address
        )

    def matches_source(self, event_name: str, key: str, artifact_name: str, address: str) -> bool:
        """Whether events named `event_name` of that contract go to this handler (the indexer
        asks once per contract and event per chunk, not once per event)."""
        if event_name != self.event_name:
            return False
        if self.contract is None:
            return True
        c = self.contract
        return c in (key, artifact_name) or c.lower() == address.lower()


@dataclass(frozen=True)
class _Fold:
    """A shortcut for handlers that only aggregate (the built-in token projection): when
    indexing, `step(state, contract_address, args)` is called for each of the chunk's events
    in chain order and then `finish(session, chain_id, state)` once, which must have the same
    effect as `apply` on those events, without building a ChainEvent per event. `revert`
    (reorgs, rare and short) still gets ChainEvents."""

    step: Callable[[dict[str, Any], str, dict[str, Any]], None]
    finish: Callable[[Session, int, dict[str, Any]], None]
    # Optional: `bind(state, contract_address, names)` -> a step taking the event's values as
    # a tuple in `names` order (the indexer binds once per contract and event per chunk).
    binder: Callable[[dict[str, Any], str, tuple[str, ...]], _FoldStep] | None = None

    def bind(self, state: dict[str, Any], contract: str, names: tuple[str, ...]) -> _FoldStep:
        if self.binder is not None:
            return self.binder(state, contract, names)
        step = self.step

        def generic(values: tuple[Any, ...]) -> None:
            step(state, contract, dict(zip(names, values, strict=True)))

        return generic


_HANDLERS: list[Handler] = []


def register_handler(
    event_name: str, apply: HandlerFn, revert: HandlerFn, *, contract: str | None = None
) -> Handler:
    """Call `apply(session, events)` for every confirmed `event_name` (of `contract`, if given)
    inside the indexing transaction, and `revert(session, events)` (newest first) when a reorg
    removes them. Both must only touch the database through `session`."""
    handler = Handler(event_name, apply, revert, contract)
    _HANDLERS.append(handler)
    return handler


def unregister_handler(handler: Handler) -> None:
    if handler in _HANDLERS:
        _HANDLERS.remove(handler)


def watch_contract(
    session: Session, chain_id: int, key: str, artifact_name: str, address: str, from_block: int
) -> None:
    """Index `address` (ABI `artifact_name`) from `from_block`, in the caller's transaction.
    Adding an address twice is a no-op. Raises RegistryError for an unknown artifact."""
    artifact(artifact_name)
    address = to_checksum_address(address)
    exists = session.scalar(
        select(WatchedContract.id).where(
            WatchedContract.chain_id == chain_id, WatchedContract.address == address
        )
    )
    if exists is None:
        session.add(
            WatchedContract(
                chain_id=chain_id,
                key=key,
                artifact=artifact_name,
                address=address,
                from_block=from_block,
                synced_to=from_block - 1,
                source="runtime",
            )
        )
        session.flush()


def pending_events(
    session: Session, chain_id: int, *, contract_address: str | None = None
) -> list[ChainEvent]:
    """Logs seen above head - confirmations at the last pass (confirmed=False)."""
    q = select(PendingEventRecord).where(PendingEventRecord.chain_id == chain_id)
    if contract_address:
        q = q.where(PendingEventRecord.contract_address == to_checksum_address(contract_address))
    rows = session.scalars(
        q.order_by(PendingEventRecord.block_number, PendingEventRecord.log_index)
    )
    names = _artifact_by_address(session, chain_id)
    return [_event_from_row(r, names, confirmed=False) for r in rows]


# ---------------------------------------------------------------- JSON-RPC


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

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    @staticmethod
    def _check_status(status: int) -> None:
        if status >= 500 or status == 429:
            raise ChainUnavailable(f"RPC node answered HTTP {status}")

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
            raise ChainUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
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
            raise ChainUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
        self._check_status(resp.status_code)
        return resp.json()

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        data = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        if "error" in data:
            raise RpcError(f"{method}: {data['error']}")
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
            raise RpcError(str(data.get("error", data)))
        out: list[Any] = [None] * len(calls)
        for item in data:
            if "error" in item:
                raise RpcError(f"{calls[item['id'] - base][0]}: {item['error']}")
            out[item["id"] - base] = item["result"]
        return out

    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

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
                    raise ChainUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
                continue
            self._logs_waiting = pending
            pending.resend = reused and not last
            return

    def _read_logs_answer(self, pending: PendingLogs) -> bytes:
        if self._logs_waiting is not pending or self._logs_conn is None:
            raise ChainUnavailable("eth_getLogs answer dropped (another request was sent)")
        try:
            resp = self._logs_conn.getresponse()
            status, body = resp.status, resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self._drop_logs_conn()
            if not pending.resend:
                raise ChainUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
            pending.resend = False
            self._send_logs_request(pending)
            return self._read_logs_answer(pending)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_logs_conn()
            raise ChainUnavailable(f"{type(exc).__name__} calling the RPC node") from exc
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
        self.error = ChainUnavailable("eth_getLogs cancelled")

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
                    raise RpcError(f"eth_getLogs: {data['error']}")
                self.logs = self.rpc._get_logs_split(self.addresses, self.frm, self.to)
            else:
                self.logs = data["result"]
        return self.logs


# ---------------------------------------------------------------- decoding


@lru_cache(maxsize=131072)
def _checksum(addr: str) -> str:
    return str(to_checksum_address(addr))


def _canonical(inp: dict[str, Any]) -> str:
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in inp["components"]) + ")" + t[5:]
    return t


_BYTES_N = re.compile(r"^bytes([0-9]+)$")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one chunk. A chunk allocates a few container
    objects per log (the parsed JSON, ChainEvents) that all die by reference counting when it
    ends; left on, the collector keeps traversing them mid-chunk, promotes them, and sets off
    full collections of the whole heap (~80 ms each in a worker that imported web3 and
    SQLAlchemy) that find nothing. Cyclic garbage made meanwhile is collected afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_ADDRESS_WORDS: dict[str, str] = {}  # topic or data word -> checksummed address


def _address_word(w: str) -> str:
    # Keyed by the topic string itself: no slicing on the hot path, and a chain's logs name
    # the same few thousand holders over and over (bounded like an LRU, cleared when full).
    a = _ADDRESS_WORDS.get(w)
    if a is None:
        if len(_ADDRESS_WORDS) >= 131072:
            _ADDRESS_WORDS.clear()
        a = _ADDRESS_WORDS[w] = _checksum("0x" + w[-40:])
    return a


def _uint_word(w: str) -> int:
    return int(w, 16)  # int() accepts the 0x of a topic


def _signed(w: str) -> int:
    v = int(w, 16)
    return v - (1 << 256) if v >> 255 else v


def _word_decoder(typ: str) -> Callable[[str], Any] | None:
    """A decoder of one 32-byte word for a static single-word type, else None. The word is
    the last 64 hex digits of its argument: a whole 0x topic or a slice of the data."""
    if typ == "address":
        return _address_word
    if typ.startswith("uint"):
        return _uint_word
    if typ.startswith("int"):
        return _signed
    if typ == "bool":
        return lambda w: int(w, 16) != 0
    m = _BYTES_N.match(typ)
    if m:
        n = int(m[1]) * 2
        return lambda w: "0x" + w[-64:][:n]
    return None


def _plain(value: Any) -> Any:
    """eth_abi output as JSON-friendly Python: bytes as 0x-hex, tuples as lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        try:
            return _checksum(value)
        except ValueError:
            return value
    return value


def _json_slot(typ: str) -> str | None:
    """How a single-word value of `typ` is written into a JSON template, or None when
    json.dumps must do it (bool: Python's True is JSON's true)."""
    if typ == "address" or _BYTES_N.match(typ):
        return '"%s"'  # 0x-hex: nothing to escape
    if typ.startswith(("uint", "int")):
        return "%d"  # exact for any Python int, as json.dumps writes it
    return None


@dataclass
class EventDecoder:
    name: str
    topic0: str
    indexed: list[tuple[str, Callable[[str], Any]]]
    data_names: list[str]
    data_types: list[str]
    data_words: list[Callable[[str], Any]] | None  # fast path when every data type is one word
    # '{"from":"%s","to":"%s","value":%d}' when every argument is a hex string or an int:
    # %-formatting the args is ~3x cheaper than json.dumps of the dict, per event.
    json_template: str | None = None

    def decode(self, topics: list[str], data: str) -> dict[str, Any] | None:
        if len(topics) != len(self.indexed) + 1:
            return None  # same topic0, other indexing (e.g. ERC-20 vs ERC-721 Transfer)
        args: dict[str, Any] = {}
        for (name, dec), topic in zip(self.indexed, topics[1:], strict=False):  # checked above
            args[name] = dec(topic)
        if self.data_words is not None:
            if len(data) < 2 + 64 * len(self.data_words):
                return None
            for i, (name, dec) in enumerate(zip(self.data_names, self.data_words, strict=False)):
                args[name] = dec(data[2 + 64 * i : 66 + 64 * i])
        elif self.data_types:
            values = abi_decode(self.data_types, bytes.fromhex(data[2:]))
            for name, value in zip(self.data_names, values, strict=True):
                args[name] = _plain(value)
        return args

    @property
    def names(self) -> tuple[str, ...]:
        """The argument names in the order of `decode`'s dict and of `values`' tuple."""
        return tuple(n for n, _ in self.indexed) + tuple(self.data_names)

    @property
    def values(self) -> Callable[[list[str], str], tuple[Any, ...] | None]:
        """`decode` as a tuple of the values (None where decode gives None), compiled once."""
        fn = self.__dict__.get("_values")
        if fn is None:
            fn = self.__dict__["_values"] = _compile_values(self)
        return fn

    def args_json(self, args: dict[str, Any]) -> str:
        """`args` as compact JSON, escaped for COPY's text format."""
        if self.json_template is not None:
            return self.json_template % tuple(args.values())
        return _copy_text(_JSON.encode(args))


def _compile_values(dec: EventDecoder) -> Callable[[list[str], str], tuple[Any, ...] | None]:
    """A function (topics, data) -> tuple of values, or None, equal to `dec.decode` but
    without the dict, the zips and a call per word: for single-word data it is generated as
    one expression, e.g. `(aw(t[1]), aw(t[2]), int(d[2:66], 16))` for an ERC-20 Transfer.
    The generated source holds only indices and names of this module's decoders."""
    if dec.data_words is None:

        def slow(topics: list[str], data: str) -> tuple[Any, ...] | None:
            args = dec.decode(topics, data)
            return None if args is None else tuple(args.values())

        return slow
    env: dict[str, Any] = {"_AW": _ADDRESS_WORDS, "_aw": _address_word}
    parts = []

    def word(i: int, fn: Callable[[str], Any], src: str) -> str:
        if fn is _address_word:
            return f"(_AW.get({src}) or _aw({src}))"
        if fn is _uint_word:
            return f"int({src}, 16)"
        env[f"_d{i}"] = fn
        return f"_d{i}({src})"

    for i, (_, idec) in enumerate(dec.indexed):
        parts.append(word(i, idec, f"t[{i + 1}]"))
    base = len(dec.indexed)
    for j, ddec in enumerate(dec.data_words):
        parts.append(word(base + j, ddec, f"d[{2 + 64 * j}:{66 + 64 * j}]"))
    src = (
        "def _values(t, d):\n"
        f"    if len(t) != {len(dec.indexed) + 1} or len(d) < {2 + 64 * len(dec.data_words)}:\n"
        "        return None\n"
        f"    return ({', '.join(parts)}{',' if len(parts) == 1 else ''})\n"
    )
    exec(compile(src, f"<values of {dec.topic0}>", "exec"), env)  # noqa: S102
    values: Callable[[list[str], str], tuple[Any, ...] | None] = env["_values"]
    return values


@cache
def decoders_for(artifact_name: str) -> dict[str, EventDecoder]:
    """topic0 (0x-hex, lower case) -> decoder, for every non-anonymous event of an artifact."""
    out: dict[str, EventDecoder] = {}
    for item in artifact(artifact_name).abi:
        if item.get("type") != "event" or item.get("anonymous"):
            continue
        inputs = item["inputs"]
        sig = f"{item['name']}({','.join(_canonical(i) for i in inputs)})"
        topic0 = "0x" + keccak(text=sig).hex()
        indexed: list[tuple[str, Callable[[str], Any]]] = []
        names, types = [], []
        for i, inp in enumerate(inputs):
            name = inp["name"] or f"arg{i}"
            typ = _canonical(inp)
            if inp.get("indexed"):
                # Dynamic indexed values are stored as their keccak hash: keep the topic.
                indexed.append((name, _word_decoder(typ) or (lambda w: w)))
            else:
                names.append(name)
                types.append(typ)
        words = [_word_decoder(t) for t in types]
        fast = None if any(w is None for w in words) else [w for w in words if w is not None]
        # The template's slots follow the args dict's order: indexed first, then data.
        slots: list[tuple[str, str | None]] = []
        for i, inp in sorted(enumerate(inputs), key=lambda p: not p[1].get("indexed")):
            typ = _canonical(inp)
            if inp.get("indexed") and _word_decoder(typ) is None:
                slot: str | None = '"%s"'  # a dynamic value's topic: its keccak as 0x-hex
            elif inp.get("indexed") or fast is not None:
                slot = _json_slot(typ)
            else:
                slot = None  # eth_abi decodes it: json.dumps writes it
            slots.append((inp["name"] or f"arg{i}", slot))
        template = None
        if all(slot is not None for _, slot in slots):
            # Argument names are Solidity identifiers: json.dumps leaves them as they are, and
            # neither they nor hex nor digits contain anything COPY's text format escapes.
            template = (
                "{"
                + ",".join(f"{_JSON.encode(n).replace('%', '%%')}:{slot}" for n, slot in slots)
                + "}"
            )
        out[topic0] = EventDecoder(item["name"], topic0, indexed, names, types, fast, template)
    return out


@dataclass(frozen=True)
class _Contract:
    key: str
    artifact: str
    address: str


def decode_logs(
    chain_id: int, logs: Iterable[dict[str, Any]], contracts: dict[str, _Contract], confirmed: bool
) -> list[ChainEvent]:
    """Decode raw eth_getLogs entries; logs of unknown contracts or events are skipped."""
    out: list[ChainEvent] = []
    for lg in logs:
        if lg.get("removed"):
            continue
        c = contracts.get(lg["address"].lower())
        topics = lg["topics"]
        if c is None or not topics:
            continue
        dec = decoders_for(c.artifact).get(topics[0].lower())
        if dec is None:
            continue
        args = dec.decode(topics, lg["data"])
        if args is None:
            continue
        out.append(
            ChainEvent(
                chain_id=chain_id,
                contract_key=c.key,
                contract_address=c.address,
                contract_name=c.artifact,
                event_name=dec.name,
                args=args,
                block_number=int(lg["blockNumber"], 16),
                block_hash=lg["blockHash"],
                tx_hash=lg["transactionHash"],
                log_index=int(lg["logIndex"], 16),
                confirmed=confirmed,
            )
        )
    return out


# ---------------------------------------------------------------- storage helpers


def _insert(session: Session, model: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)


def _upsert(
    session: Session, model: Any, rows: list[dict[str, Any]], keys: list[str], update: list[str]
) -> None:
    if not rows:
        return
    stmt = _insert(session, model)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in update}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt, rows)


_EVENT_COLUMNS = (
    "chain_id",
    "contract_key",
    "contract_address",
    "event_name",
    "args",
    "block_number",
    "block_hash",
    "tx_hash",
    "log_index",
)


_JSON = json.JSONEncoder(separators=(",", ":"))  # one C encoder, not one per call


def _event_tuple(ev: ChainEvent) -> tuple[Any, ...]:
    return (
        ev.chain_id,
        ev.contract_key,
        ev.contract_address,
        ev.event_name,
        _JSON.encode(ev.args),
        ev.block_number,
        ev.block_hash,
        ev.tx_hash,
        ev.log_index,
    )


# tx_hash is bytea (Hash32): COPY takes it as hex after this prefix.
_TX = Hash32.COPY_PREFIX


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format (backslash, tab, newline, carriage return)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def _copy_lines(events: Sequence[ChainEvent]) -> str:
    enc = _JSON.encode
    # Every column but args and contract_key is a number or hex: only those two need escaping.
    return "".join(
        f"{ev.chain_id}\t{_copy_text(ev.contract_key)}\t{ev.contract_address}\t{ev.event_name}\t"
        f"{_copy_text(enc(ev.args))}\t{ev.block_number}\t{ev.block_hash}\t{_TX}{ev.tx_hash[2:]}\t"
        f"{ev.log_index}\n"
        for ev in events
    )


@dataclass(frozen=True)
class _Route:
    """Where one event of one contract goes: its decoder, the start of its COPY lines (the
    columns that are the same for all its logs) and the handlers that want it."""

    contract: _Contract
    decoder: EventDecoder
    prefix: str
    sinks: tuple[list[ChainEvent], ...]  # the event lists of the handlers that want it
    steps: tuple[Callable[[tuple[Any, ...]], None], ...]  # the folds' bound steps
    values: Callable[[list[str], str], tuple[Any, ...] | None]  # EventDecoder.values
    # prefix + the args' JSON template ('%' of the prefix doubled): one %-format of the
    # values makes the line up to the args column. None: json.dumps of the args dict.
    head: str | None
    names: tuple[str, ...]
    slow: bool  # a ChainEvent or the args dict is needed (handlers without fold, keep_events)


_FoldStep = Callable[[tuple[Any, ...]], None]


class _ChunkDecoder:
    """Turns a chunk's raw logs straight into COPY lines, in one pass.

    A ChainEvent is only built for the events some handler wants (or for every event when
    `keep_events`, i.e. no COPY), and handlers are matched once per contract and event, not
    once per log: on the hot path a log costs one generated decode of its words into a tuple
    (EventDecoder.values), one %-format, one f-string and the folds' steps (bound to the
    event's argument names once per chunk, see _Fold.bind)."""

    def __init__(
        self,
        chain_id: int,
        contracts: dict[str, _Contract],
        handlers: Sequence[Handler],
        *,
        keep_events: bool,
    ) -> None:
        self.chain_id = chain_id
        # Per handler, in registration order, its events in chain order (as _run_handlers),
        # or for a handler with a _Fold, the fold's state.
        self.handled: list[tuple[Handler, list[ChainEvent], dict[str, Any]]] = [
            (h, [], {}) for h in handlers
        ]
        self.events: list[ChainEvent] | None = [] if keep_events else None
        self.blocks: dict[int, str] = {}  # block number -> the hash its logs name
        self.count = 0
        self._routes: dict[str, dict[str, _Route]] = {}
        for addr, c in contracts.items():
            by_topic: dict[str, _Route] = {}
            for topic0, dec in decoders_for(c.artifact).items():
                prefix = f"{chain_id}\t{_copy_text(c.key)}\t{c.address}\t{_copy_text(dec.name)}\t"
                wanted = [
                    (h, sink, state)
                    for h, sink, state in self.handled
                    if h.matches_source(dec.name, c.key, c.artifact, c.address)
                ]
                sinks = tuple(sink for h, sink, _ in wanted if h.fold is None)
                names = dec.names
                steps = tuple(
                    h.fold.bind(state, c.address, names)
                    for h, _, state in wanted
                    if h.fold is not None
                )
                head = (
                    None
                    if dec.json_template is None
                    else prefix.replace("%", "%%") + dec.json_template
                )
                by_topic[topic0] = _Route(
                    c,
                    dec,
                    prefix,
                    sinks,
                    steps,
                    dec.values,
                    head,
                    names,
                    bool(sinks) or keep_events or head is None,
                )
            self._routes[addr] = by_topic

    def feed(self, logs: Iterable[dict[str, Any]]) -> str:
        """Decode `logs` (chain order); returns their COPY text. Logs of unknown contracts or
        events are skipped, as in decode_logs."""
        lines: list[str] = []
        append = lines.append
        blocks = self.blocks
        routes = self._routes
        tx = _TX
        last_hex, last_hash, number = "", "", -1
        for lg in logs:
            topics = lg["topics"]
            if not topics or lg.get("removed"):
                continue
            # Nodes answer in lower case: try that before paying for .lower().
            address, topic0 = lg["address"], topics[0]
            by_topic = routes.get(address) or routes.get(address.lower())
            route = (
                None if by_topic is None else (by_topic.get(topic0) or by_topic.get(topic0.lower()))
            )
            if route is None:
                continue
            values = route.values(topics, lg["data"])
            if values is None:
                continue
            block_hash = lg["blockHash"]
            if lg["blockNumber"] != last_hex or block_hash != last_hash:
                # Logs come grouped by block: parse the number and check the hash once.
                last_hex, last_hash = lg["blockNumber"], block_hash
                number = int(last_hex, 16)
                if blocks.setdefault(number, block_hash) != block_hash:
                    raise _ReorgDuringFetch(f"two hashes for block {number} in one answer")
            tx_hash = lg["transactionHash"]
            log_index = int(lg["logIndex"], 16)
            for step in route.steps:
                step(values)
            if route.slow:
                self._slow(route, values, number, block_hash, tx_hash, log_index, append)
                continue
            # Hashes and numbers need no COPY escaping; nor does a template's output.
            append(
                f"{route.head % values}\t{number}\t{block_hash}\t{tx}{tx_hash[2:]}\t{log_index}\n"  # type: ignore[operator]
            )
        self.count += len(lines)
        return "".join(lines)

    def _slow(
        self,
        route: _Route,
        values: tuple[Any, ...],
        number: int,
        block_hash: str,
        tx_hash: str,
        log_index: int,
        append: Callable[[str], None],
    ) -> None:
        """The rest of `feed` for a log that needs its args dict or a ChainEvent."""
        args = dict(zip(route.names, values, strict=True))
        dec = route.decoder
        append(
            f"{route.prefix}{dec.args_json(args)}\t{number}\t{block_hash}\t{_TX}{tx_hash[2:]}"
            f"\t{log_index}\n"
        )
        if route.sinks or self.events is not None:
            c = route.contract
            ev = ChainEvent(
                self.chain_id,
                c.key,
                c.address,
                c.artifact,
                dec.name,
                args,
                number,
                block_hash,
                tx_hash,
                log_index,
            )
            for sink in route.sinks:
                sink.append(ev)
            if self.events is not None:
                self.events.append(ev)

    def run_handlers(self, session: Session) -> None:
        """Apply the chunk's events, handler by handler in registration order."""
        for handler, events, state in self.handled:
            if handler.fold is not None:
                if state:
                    handler.fold.finish(session, self.chain_id, state)
            elif events:
                handler.apply(session, events)


def _can_copy(session: Session) -> bool:
    raw = session.connection().connection.driver_connection
    return session.get_bind().dialect.name == "postgresql" and hasattr(raw, "pgconn")


@contextmanager
def _copy_in(session: Session, model: Any) -> Iterator[Callable[[str], None]]:
    """COPY text-format lines into `model`'s table, in the session's transaction (psycopg 3)."""
    raw: Any = session.connection().connection.driver_connection
    cols = ", ".join(_EVENT_COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY {model.__tablename__} ({cols}) FROM STDIN") as cp:
        yield cp.write


def store_events(session: Session, model: Any, events: Sequence[ChainEvent]) -> None:
    """Bulk-insert events: COPY on PostgreSQL (psycopg 3), executemany elsewhere."""
    if not events:
        return
    if _can_copy(session):
        with _copy_in(session, model) as write:
            # Written in slices so that PostgreSQL parses one while Python formats the next.
            for i in range(0, len(events), 2000):
                write(_copy_lines(events[i : i + 2000]))
        return
    session.execute(
        _insert(session, model),
        [
            dict(
                zip(
                    _EVENT_COLUMNS,
                    (*_event_tuple(ev)[:4], ev.args, *_event_tuple(ev)[5:]),
                    strict=True,
                )
            )
            for ev in events
        ],
    )


def _artifact_by_address(session: Session, chain_id: int) -> dict[str, str]:
    rows = session.execute(
        select(WatchedContract.address, WatchedContract.artifact).where(
            WatchedContract.chain_id == chain_id
        )
    )
    return {a: n for a, n in rows}


def _event_from_row(
    r: ChainEventRecord | PendingEventRecord, names: dict[str, str], confirmed: bool = True
) -> ChainEvent:
    return ChainEvent(
        chain_id=r.chain_id,
        contract_key=r.contract_key,
        contract_address=r.contract_address,
        contract_name=names.get(r.contract_address, ""),
        event_name=r.event_name,
        args=dict(r.args),
        block_number=r.block_number,
        block_hash=r.block_hash,
        tx_hash=r.tx_hash,
        log_index=r.log_index,
        confirmed=confirmed,
    )


def _run_handlers(session: Session, events: Sequence[ChainEvent], *, revert: bool) -> None:
    handlers = list(reversed(_HANDLERS)) if revert else list(_HANDLERS)
    for h in handlers:
        mine = [ev for ev in events if h.matches(ev)]
        if mine:
            (h.revert if revert else h.apply)(session, mine)


# ---------------------------------------------------------------- the indexer


@dataclass
class IndexResult:
    chain_id: int
    head: int = -1
    target: int = -1
    cursor: int = -1
    events: int = 0
    chunks: int = 0
    reorgs: int = 0
    rolled_back_events: int = 0
    pending: int = 0
    busy: bool = False
    caught_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _ReorgDuringFetch(RuntimeError):
    pass


@dataclass(frozen=True)
class _Fetched:
    """One chunk's logs, with the header of its last block read *before* eth_getLogs and the
    headers of _after_numbers (its last block, the block before its first) read *after* its
    answer arrived."""

    addresses: tuple[str, ...]
    frm: int
    to: int
    before: dict[str, Any] | None
    logs: list[dict[str, Any]]
    headers: dict[int, dict[str, Any] | None]


_Plan = tuple[tuple[str, ...], int, int]  # a chunk: contract addresses, first and last block


def _after_numbers(frm: int, to: int, first: bool) -> list[int]:
    """The headers read as soon as a chunk's logs have arrived: its last block (it must still
    have the hash read before the request) and the one before its first (the block it
    continues from, checked against the stored one). A chunk that does not continue one
    fetched just before (`first`) may not continue a stored block either (a fresh database): its
    first block is read too, so that a next block's logs have a parent hash. Other headers a
    chunk needs (a block with logs whose predecessor's hash is not known) are read when it is
    indexed."""
    return sorted({max(frm - 1, 0), to} | ({frm} if first else set()))


def _fetch(rpc: JsonRpc, addresses: tuple[str, ...], frm: int, to: int) -> _Fetched:
    before = rpc.headers([to])[0]
    logs = rpc.get_logs(list(addresses), frm, to)
    numbers = _after_numbers(frm, to, True)
    headers = dict(zip(numbers, rpc.headers(numbers), strict=True))
    return _Fetched(addresses, frm, to, before, logs, headers)


@dataclass
class _Chunk:
    """What the chunks of one transaction share: the decoder (its handler state and counts),
    the open COPY (PostgreSQL), the block rows to store, and the `known` block (number, hash)
    the next chunk continues from: the highest stored block, checked at the start of the
    transaction, then each chunk's last block, which the next chunk reads again (it is the
    block before its first, one of _after_numbers)."""

    dec: _ChunkDecoder
    known: tuple[int, str] | None = None
    write: Callable[[str], None] | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Ahead:
    """A chunk fetched ahead: planned (its `before` header read) and, once sent, in flight;
    `headers`: those of _after_numbers, read as soon as its answer was off the socket."""

    addresses: tuple[str, ...]
    frm: int
    to: int
    before: dict[str, Any] | None
    pending: PendingLogs | None = None
    headers: dict[int, dict[str, Any] | None] | None = None
    first: bool = False  # not the continuation of a chunk fetched ahead before it


_FETCH_ERRORS = (ChainUnavailable, RpcError, requests.RequestException, ValueError)


class _Prefetcher:
    """Keeps the node busy with the coming chunks' eth_getLogs while the current chunk is
    decoded and COPYed. The step says which chunks come next (`ensure`, as if the current ones
    commit); their last blocks' headers are read (the `before` of ADR 0004, which must precede
    the request), and the oldest is sent as soon as the eth_getLogs connection is free. When an
    answer has been read off the socket (`receive`, while PostgreSQL works through the COPY),
    one batch reads that chunk's headers (_after_numbers) together with the `before` headers of
    chunks planned since, the next chunk's eth_getLogs is sent, and only then is the answer
    parsed: the node computes the next chunk while this process parses, decodes and writes, and
    the header batch does not queue behind an eth_getLogs. (One eth_getLogs connection, one
    request on it at a time: HTTP/1.1 answers come in order.)

    A chunk fetched ahead is only taken if it is the one the step asks for (same contracts and
    first block, last block not beyond the step's), otherwise everything ahead is dropped and
    the step fetches its own. Nothing fetched ahead is trusted: the step that takes it checks,
    inside its transaction and after its reorg check, that the last block kept the hash read
    before eth_getLogs, that the block before the chunk is the one it continues from, and that
    the logs' block hashes are the chain's. Failures are not raised here: the step then
    fetches again, and that raises."""

    def __init__(self, rpc: JsonRpc) -> None:
        self._rpc = rpc
        self._ahead: list[_Ahead] = []  # consecutive chunks, oldest first, `before` read
        self._wanted: list[_Plan] = []  # the chunks after those, `before` not read yet

    def ensure(self, upcoming: list[_Plan]) -> None:
        """Fetch these chunks ahead (the next ones, oldest first) unless they already are."""
        for plan in upcoming:
            if not any(a.frm == plan[1] for a in self._ahead) and plan not in self._wanted:
                self._wanted.append(plan)
        if self._wanted and not any(a.pending is not None for a in self._ahead):
            # Nothing in flight to piggyback on: read the `before` headers now.
            try:
                self._plan_wanted([])
            except _FETCH_ERRORS as exc:
                log.info("prefetch planning failed (%s)", exc)
                self.drop()
                return
        self._pump()

    def _plan_wanted(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """One batch of `calls` and the `before` headers of the wanted chunks; the latter move
        to the chunks ahead. Returns the answers to `calls`."""
        wanted, self._wanted = self._wanted, []
        answers = self._rpc.batch(
            calls + [("eth_getBlockByNumber", [hex(to), False]) for _, _, to in wanted]
        )
        for (addresses, frm, to), before in zip(wanted, answers[len(calls) :], strict=True):
            first = not any(a.to == frm - 1 for a in self._ahead)
            self._ahead.append(_Ahead(addresses, frm, to, before, first=first))
        return answers[: len(calls)]

    def _pump(self) -> None:
        """Send the oldest chunk not sent yet, unless an answer is still on the connection."""
        if any(a.pending is not None and a.pending.unread for a in self._ahead):
            return
        for a in self._ahead:
            if a.pending is None:
                a.pending = self._rpc.send_get_logs(list(a.addresses), a.frm, a.to)
                return

    def _result(self, a: _Ahead) -> list[dict[str, Any]]:
        if a.pending is None:
            self._pump()  # it is the oldest unsent one: sent now
        assert a.pending is not None
        if a.headers is None:
            a.pending.read()
            if a.pending.error is None:
                numbers = _after_numbers(a.frm, a.to, a.first)
                calls = [("eth_getBlockByNumber", [hex(n), False]) for n in numbers]
                a.headers = dict(zip(numbers, self._plan_wanted(calls), strict=True))
            self._pump()  # the next chunk is computed while this answer is parsed
        return a.pending.result()

    def receive(self) -> None:
        """Read the answer of the oldest chunk in flight, then its headers, send the next one,
        and parse it."""
        for i, a in enumerate(self._ahead):
            if a.pending is not None and a.pending.logs is None:
                try:
                    self._result(a)
                except _FETCH_ERRORS as exc:
                    log.info("prefetch of blocks %d-%d failed (%s)", a.frm, a.to, exc)
                    self._drop(i)
                return

    def take(self, addresses: tuple[str, ...], frm: int, to: int) -> _Fetched:
        """The chunk fetched ahead if it fits [frm, to] (it may end earlier when the target
        moved on since), else the chunk fetched now."""
        if self._ahead:
            a = self._ahead[0]
            if (a.addresses, a.frm) == (addresses, frm) and a.to <= to:
                try:
                    logs = self._result(a)
                except _FETCH_ERRORS as exc:
                    log.info("prefetch of blocks %d-%d failed (%s): fetching again", frm, to, exc)
                else:
                    self._ahead.pop(0)
                    return _Fetched(addresses, frm, a.to, a.before, logs, a.headers or {})
        self.drop()
        return _fetch(self._rpc, addresses, frm, to)

    def _drop(self, start: int) -> None:
        for a in self._ahead[start:]:
            if a.pending is not None:
                a.pending.cancel()
        del self._ahead[start:]
        self._wanted.clear()

    def drop(self) -> None:
        self._drop(0)


@dataclass
class Indexer:
    """Indexes one chain into one database. Safe to run from several workers at once."""

    engine: Engine
    rpc: JsonRpc
    deployments_dir: Path | None = None
    confirmations: int = 2
    chunk_size: int = 2000
    # A transaction takes further chunks (one eth_getLogs of `chunk_size` blocks each) of the
    # same contracts until it holds this many events: node limits size the requests, this the
    # commits (each costs the lock, reorg check, upserts and commit once).
    batch_events: int = 10_000
    lease_seconds: int = 120
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    @property
    def _pg(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # -- setup

    def _deployed(self) -> list[dict[str, Any]]:
        """The watched_contracts rows of the deployments file's contracts (read once per run;
        the steps insert those missing, so a run on a database that watches them all writes
        nothing for them)."""
        if self.deployments_dir is None:
            return []
        try:
            deployments = load_deployments(self.deployments_dir, self.chain_id)
        except RegistryError:
            log.warning(
                "chain %s: no deployments file, indexing runtime contracts only", self.chain_id
            )
            return []
        return [
            {
                "chain_id": self.chain_id,
                "key": c.key,
                "artifact": c.contract,
                "address": _checksum(c.address),
                "from_block": c.block_number,
                "synced_to": c.block_number - 1,
                "source": "deployments",
                "created_at": dt.datetime.now(dt.UTC),
            }
            for c in deployments.contracts.values()
        ]

    # -- locking

    def _lock(self, s: Session) -> ChainCursor | None:
        """The chain's cursor, locked for this transaction (created on a fresh database), or
        None when another indexer holds it."""
        cursor = self._try_lock(s)
        if cursor is None and s.get(ChainCursor, self.chain_id) is None:
            _upsert(
                s, ChainCursor, [{"chain_id": self.chain_id, "block_number": -1}], ["chain_id"], []
            )
            cursor = self._try_lock(s)
        return cursor

    def _try_lock(self, s: Session) -> ChainCursor | None:
        q = select(ChainCursor).where(ChainCursor.chain_id == self.chain_id)
        if self._pg:
            return s.scalars(q.with_for_update(skip_locked=True)).first()
        now = dt.datetime.now(dt.UTC)
        got = s.execute(
            update(ChainCursor)
            .where(
                ChainCursor.chain_id == self.chain_id,
                (ChainCursor.locked_by.is_(None))
                | (ChainCursor.locked_by == self.owner)
                | (ChainCursor.locked_until < now),
            )
            .values(
                locked_by=self.owner, locked_until=now + dt.timedelta(seconds=self.lease_seconds)
            )
        )
        return s.scalars(q).first() if got.rowcount else None  # type: ignore[attr-defined]

    def _release(self) -> None:
        if self._pg:
            return
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(ChainCursor)
                .where(ChainCursor.chain_id == self.chain_id, ChainCursor.locked_by == self.owner)
                .values(locked_by=None, locked_until=None)
            )

    # -- the pass

    def run(
        self, *, max_seconds: float | None = None, max_chunks: int | None = None
    ) -> IndexResult:
        """Index until caught up with head - confirmations (or a budget runs out), then refresh
        the pending events. Raises ChainUnavailable when the node does not answer."""
        deployed = self._deployed()
        result = IndexResult(chain_id=self.chain_id)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        prefetcher = _Prefetcher(self.rpc)
        failures: list[Exception] = []  # the pending events' fetch, raised once committed
        try:
            while True:
                if max_chunks is not None and result.chunks >= max_chunks:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    step = self._step(
                        result,
                        prefetcher,
                        failures,
                        deployed,
                        max_chunks=max_chunks,
                        deadline=deadline,
                    )
                except _ReorgDuringFetch:
                    prefetcher.drop()
                    continue  # the next step finds the new branch
                if step == "busy":
                    result.busy = True
                    return result
                if failures:
                    raise failures[0]
                if step == "done":  # the pending events were refreshed in that step
                    result.caught_up = True
                    break
        finally:
            prefetcher.drop()
            self._release()
        return result

    def _plan(self, synced: dict[str, int], target: int) -> _Plan | None:
        """The next chunk: the contracts furthest behind (`synced`: address -> synced_to), from
        their next block to the chunk size, the target or the next contract's cursor, whichever
        comes first."""
        behind = [n for n in synced.values() if n < target]
        if not behind:
            return None
        low = min(behind)
        frm = low + 1
        to = min(frm + self.chunk_size - 1, target)
        higher = [n for n in synced.values() if n > low]
        if higher:
            to = min(to, min(higher))
        return tuple(sorted(a for a, n in synced.items() if n == low)), frm, to

    def _upcoming(self, synced: dict[str, int], target: int, n: int) -> list[_Plan]:
        """The next `n` chunks, each planned as if the ones before it commit."""
        synced, out = dict(synced), list[_Plan]()
        while len(out) < n and (plan := self._plan(synced, target)) is not None:
            out.append(plan)
            for a in plan[0]:
                synced[a] = plan[2]
        return out

    def _step(
        self,
        result: IndexResult,
        prefetcher: _Prefetcher,
        failures: list[Exception],
        deployed: list[dict[str, Any]],
        *,
        max_chunks: int | None = None,
        deadline: float | None = None,
    ) -> str:
        """One transaction: the reorg check, then chunks (one eth_getLogs each) of the same
        contracts until `batch_events` events, the chunk or time budget, or the target; caught
        up, the pending events (a failure to fetch them goes in `failures`, and what the step
        indexed is committed all the same)."""
        with _gc_paused(), Session(self.engine, expire_on_commit=False) as s, s.begin():
            cursor = self._lock(s)
            if cursor is None:
                return "busy"
            top = s.scalars(
                select(ChainBlock)
                .where(ChainBlock.chain_id == self.chain_id)
                .order_by(ChainBlock.number.desc())
                .limit(1)
            ).first()
            # The head and the highest stored block's header in one round trip.
            calls: list[tuple[str, list[Any]]] = [("eth_blockNumber", [])]
            if top is not None:
                calls.append(("eth_getBlockByNumber", [hex(top.number), False]))
            answers = self.rpc.batch(calls)
            head = int(answers[0], 16)
            target = head - self.confirmations
            result.head, result.target = head, target
            ancestor = None if top is None else self._find_reorg(s, top, answers[1])
            if ancestor is not None:
                self._rollback_to(s, ancestor, result)
                cursor.reorgs += 1
                return "reorg"
            watched = self._watched(s)
            missing = [row for row in deployed if row["address"] not in watched]
            if missing:  # a fresh database, or contracts deployed since
                _upsert(s, WatchedContract, missing, ["chain_id", "address"], [])
                watched = self._watched(s)
            synced = {a: w.synced_to for a, w in watched.items()}
            plan = self._plan(synced, target)
            if plan is None:
                self._save_cursor(cursor, synced, head)
                self._refresh_pending(s, watched.values(), result, failures)
                return "done"
            if self._pg:
                # A chunk's commit need not wait for its WAL flush: see ADR 0004 ("Durability").
                s.execute(text("SET LOCAL synchronous_commit = off"))
            addresses, frm, to = plan
            group = [watched[a] for a in addresses]
            copy = _can_copy(s)
            chunk = _Chunk(
                _ChunkDecoder(
                    self.chain_id, self._contracts(group), list(_HANDLERS), keep_events=not copy
                ),
                known=None if top is None else (top.number, top.hash),
            )
            chunks = 0
            with ExitStack() as copying:
                if copy:
                    chunk.write = copying.enter_context(_copy_in(s, ChainEventRecord))
                while True:
                    # This chunk and the next two (each as if the ones before it commit) are
                    # requested ahead unless they already are: the node computes them while this
                    # process decodes and writes; whoever takes one checks that it is still the
                    # right one. Not past the run's chunk budget.
                    left = 3 if max_chunks is None else max_chunks - result.chunks - chunks
                    prefetcher.ensure(self._upcoming(synced, target, min(3, left)))
                    fetched = prefetcher.take(addresses, frm, to)
                    to = fetched.to
                    for a in addresses:
                        synced[a] = watched[a].synced_to = to
                    chunks += 1
                    self._index_chunk(s, chunk, fetched, prefetcher)
                    # Its parsed logs are freed now, while PostgreSQL works through the COPY,
                    # not after it (~2 ms per 1,000 logs, measured).
                    del fetched
                    following = self._plan(synced, target)
                    if (
                        following is None
                        or following[0] != addresses
                        or chunk.dec.count >= self.batch_events
                        or (max_chunks is not None and result.chunks + chunks >= max_chunks)
                        or (deadline is not None and time.monotonic() > deadline)
                    ):
                        break
                    _, frm, to = following
            _upsert(s, ChainBlock, chunk.blocks, ["chain_id", "number"], ["hash", "parent_hash"])
            chunk.dec.run_handlers(s)
            self._save_cursor(cursor, synced, head)
            result.events += chunk.dec.count
            result.chunks += chunks
            result.cursor = cursor.block_number
            if following is not None:
                return "chunk"
            # Caught up with this step's target: no further step needed to find that out, and
            # the pending events are refreshed in this transaction (no second lock and commit).
            self._refresh_pending(s, watched.values(), result, failures)
            return "done"

    def _watched(self, s: Session) -> dict[str, WatchedContract]:
        q = select(WatchedContract).where(WatchedContract.chain_id == self.chain_id)
        return {w.address: w for w in s.scalars(q)}

    def _save_cursor(self, cursor: ChainCursor, synced: dict[str, int], head: int) -> None:
        cursor.block_number = min(synced.values(), default=-1)
        cursor.head_block = head
        cursor.updated_at = dt.datetime.now(dt.UTC)

    def _contracts(self, watched: Iterable[WatchedContract]) -> dict[str, _Contract]:
        return {w.address.lower(): _Contract(w.key, w.artifact, w.address) for w in watched}

    def _index_chunk(
        self, s: Session, chunk: _Chunk, fetched: _Fetched, prefetcher: _Prefetcher
    ) -> None:
        """Decode and write one fetched chunk and check it against the chain's headers, all
        read after its logs (fetched.headers, and here any other this chunk needs)."""
        to = fetched.to
        headers = dict(fetched.headers)
        dec = chunk.dec
        dec.blocks = {}
        if chunk.write is not None:
            # Decoded and written in slices, so PostgreSQL parses and indexes one slice while
            # Python decodes the next. Nothing is visible before the commit, and the checks
            # below roll the whole transaction back.
            for i in range(0, len(fetched.logs), 1000):
                chunk.write(dec.feed(fetched.logs[i : i + 1000]))
            prefetcher.receive()  # while PostgreSQL catches up with the COPY
        else:
            dec.feed(fetched.logs)
            store_events(s, ChainEventRecord, dec.events or [])
            dec.events = []
        # The last block has kept its hash since before the fetch, and each log's block is the
        # chain's block: the logs are one consistent view of the chain.
        tip = headers[to]
        if fetched.before is None or tip is None or fetched.before["hash"] != tip["hash"]:
            raise _ReorgDuringFetch(f"block {to} changed while fetching logs")
        # Parent hashes (ADR 0004, "Parent hashes from the logs"): a block's parent is the hash
        # its predecessor has in these logs, else the known block's, else that of a header read
        # after the logs; a block with logs whose predecessor has none of these is read itself
        # (its header names its parent).
        hashes = dict(dec.blocks)
        if chunk.known is not None:
            hashes.setdefault(*chunk.known)
        for number, hdr in headers.items():
            if hdr is not None:
                hashes.setdefault(number, hdr["hash"])
        missing = sorted({n for n in dec.blocks if n - 1 not in hashes} - headers.keys())
        if missing:
            headers.update(zip(missing, self.rpc.headers(missing), strict=True))
        if chunk.known is not None and chunk.known[0] in headers:
            # Read after the logs (always, when the chunk continues the known block): the chain
            # still has the block this chunk continues from.
            number, known_hash = chunk.known
            hdr = headers[number]
            if hdr is None or hdr["hash"] != known_hash:
                raise _ReorgDuringFetch(f"block {number} changed while fetching logs")
        rows = chunk.blocks
        for number, block_hash in sorted(dec.blocks.items()):
            hdr = headers.get(number)
            if hdr is not None:
                # The chain's header (read after the logs) names the logs' hash, and its parent
                # is the hash the logs of the block below name, if any.
                parent = hdr["parentHash"]
                if hdr["hash"] != block_hash or hashes.get(number - 1, parent) != parent:
                    raise _ReorgDuringFetch(f"block {number} changed while fetching logs")
            elif number in headers:  # asked for and not there: the chain got shorter
                raise _ReorgDuringFetch(f"block {number} changed while fetching logs")
            else:
                parent = hashes[number - 1]
            rows.append(
                {
                    "chain_id": self.chain_id,
                    "number": number,
                    "hash": block_hash,
                    "parent_hash": parent,
                }
            )
        if to not in dec.blocks:
            rows.append(
                {
                    "chain_id": self.chain_id,
                    "number": to,
                    "hash": tip["hash"],
                    "parent_hash": tip["parentHash"],
                }
            )
        elif tip["hash"] != dec.blocks[to]:
            raise _ReorgDuringFetch(f"block {to} changed while fetching logs")
        # The next chunk of this transaction continues from this one's last block.
        chunk.known = (to, tip["hash"])

    # -- reorgs

    def _find_reorg(self, s: Session, top: ChainBlock, hdr: dict[str, Any] | None) -> int | None:
        """None when the highest stored block `top` is still on the chain (`hdr`: the chain's
        header at its height), else the common ancestor's number (-1 when no stored block
        survived)."""
        if hdr is not None and hdr["hash"] == top.hash:
            return None
        below = top.number + 1
        while True:
            rows = list(
                s.scalars(
                    select(ChainBlock)
                    .where(ChainBlock.chain_id == self.chain_id, ChainBlock.number < below)
                    .order_by(ChainBlock.number.desc())
                    .limit(64)
                )
            )
            if not rows:
                return -1
            for row, h in zip(rows, self.rpc.headers([r.number for r in rows]), strict=True):
                if h is not None and h["hash"] == row.hash:
                    return row.number
            below = rows[-1].number

    def _rollback_to(self, s: Session, ancestor: int, result: IndexResult) -> None:
        chain_id = self.chain_id
        rows = list(
            s.scalars(
                select(ChainEventRecord)
                .where(
                    ChainEventRecord.chain_id == chain_id,
                    ChainEventRecord.block_number > ancestor,
                )
                .order_by(ChainEventRecord.block_number.desc(), ChainEventRecord.log_index.desc())
            )
        )
        names = _artifact_by_address(s, chain_id)
        _run_handlers(s, [_event_from_row(r, names) for r in rows], revert=True)
        s.execute(
            delete(ChainEventRecord).where(
                ChainEventRecord.chain_id == chain_id, ChainEventRecord.block_number > ancestor
            )
        )
        s.execute(
            delete(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number > ancestor)
        )
        s.execute(delete(PendingEventRecord).where(PendingEventRecord.chain_id == chain_id))
        for w in self._watched(s).values():
            if w.synced_to > ancestor:
                w.synced_to = max(ancestor, w.from_block - 1)
        log.warning(
            "chain %s: reorg, rolled back %d events above block %d", chain_id, len(rows), ancestor
        )
        result.reorgs += 1
        result.rolled_back_events += len(rows)

    # -- pending

    def _refresh_pending(
        self,
        s: Session,
        watched: Iterable[WatchedContract],
        result: IndexResult,
        failures: list[Exception],
    ) -> None:
        """Replace the pending events (above the target, up to the head) of the contracts
        caught up with the target; in the caught-up step's transaction, under its lock. When
        the node does not answer, the pending events stay as they were and the error goes in
        `failures` (raised by run() once the step has committed)."""
        ready = [w for w in watched if w.synced_to >= result.target]
        logs: list[dict[str, Any]] = []
        if result.head > result.target and ready:
            try:
                logs = self.rpc.get_logs([w.address for w in ready], result.target + 1, result.head)
            except _FETCH_ERRORS as exc:
                failures.append(exc)
                return
        s.execute(delete(PendingEventRecord).where(PendingEventRecord.chain_id == self.chain_id))
        events = decode_logs(self.chain_id, logs, self._contracts(ready), confirmed=False)
        store_events(s, PendingEventRecord, events)
        result.pending = len(events)


# ---------------------------------------------------------------- the token projection
# ERC-20 balances and ERC-721 owners from Transfer events: chain-level, not a domain, and the
# projection that reconciliation checks. Registered like any domain handler.


def _balance_deltas(events: Sequence[ChainEvent], sign: int) -> dict[tuple[str, str], int]:
    deltas: dict[tuple[str, str], int] = defaultdict(int)
    for ev in events:
        value = int(ev.args["value"]) * sign
        if ev.args["from"] != ZERO_ADDRESS:
            deltas[(ev.contract_address, ev.args["from"])] -= value
        if ev.args["to"] != ZERO_ADDRESS:
            deltas[(ev.contract_address, ev.args["to"])] += value
    return deltas


def _apply_balances(s: Session, chain_id: int, deltas: dict[tuple[str, str], int]) -> None:
    rows = [
        {"chain_id": chain_id, "contract_address": c, "holder": h, "amount": d}
        for (c, h), d in deltas.items()
        if d
    ]
    if not rows:
        return
    stmt = _insert(s, TokenBalance)
    stmt = stmt.on_conflict_do_update(
        index_elements=["chain_id", "contract_address", "holder"],
        set_={"amount": TokenBalance.__table__.c.amount + stmt.excluded.amount},
    )
    s.execute(stmt, rows)


def _set_owners(s: Session, chain_id: int, owners: dict[tuple[str, int], str | None]) -> None:
    gone = [(c, t) for (c, t), o in owners.items() if o is None]
    for c, t in gone:
        s.execute(
            delete(TokenOwner).where(
                TokenOwner.chain_id == chain_id,
                TokenOwner.contract_address == c,
                TokenOwner.token_id == Decimal(t),
            )
        )
    _upsert(
        s,
        TokenOwner,
        [
            {"chain_id": chain_id, "contract_address": c, "token_id": Decimal(t), "owner": o}
            for (c, t), o in owners.items()
            if o is not None
        ],
        ["chain_id", "contract_address", "token_id"],
        ["owner"],
    )


def _transfers(events: Sequence[ChainEvent]) -> tuple[list[ChainEvent], list[ChainEvent]]:
    fungible = [ev for ev in events if "value" in ev.args]
    nft = [ev for ev in events if "tokenId" in ev.args]
    return fungible, nft


def apply_transfers(s: Session, events: Sequence[ChainEvent]) -> None:
    fungible, nft = _transfers(events)
    if fungible:
        _apply_balances(s, fungible[0].chain_id, _balance_deltas(fungible, 1))
    if nft:
        owners: dict[tuple[str, int], str | None] = {}
        for ev in nft:
            to = ev.args["to"]
            owners[(ev.contract_address, int(ev.args["tokenId"]))] = (
                None if to == ZERO_ADDRESS else to
            )
        _set_owners(s, nft[0].chain_id, owners)


def revert_transfers(s: Session, events: Sequence[ChainEvent]) -> None:
    """Undo Transfer events; `events` come newest first."""
    fungible, nft = _transfers(events)
    if fungible:
        _apply_balances(s, fungible[0].chain_id, _balance_deltas(fungible, -1))
    if nft:
        owners: dict[tuple[str, int], str | None] = {}
        for ev in nft:  # newest first: the last write is the oldest event's `from`
            frm = ev.args["from"]
            owners[(ev.contract_address, int(ev.args["tokenId"]))] = (
                None if frm == ZERO_ADDRESS else frm
            )
        _set_owners(s, nft[0].chain_id, owners)


def _fold_transfer(state: dict[str, Any], contract: str, args: dict[str, Any]) -> None:
    """apply_transfers one event at a time: net balance deltas and last owners of the chunk."""
    if "value" in args:
        deltas = state.get("deltas")
        if deltas is None:
            deltas = state["deltas"] = defaultdict(int)
        value = int(args["value"])
        if args["from"] != ZERO_ADDRESS:
            deltas[(contract, args["from"])] -= value
        if args["to"] != ZERO_ADDRESS:
            deltas[(contract, args["to"])] += value
    if "tokenId" in args:
        to = args["to"]
        owners = state.get("owners")
        if owners is None:
            owners = state["owners"] = {}
        owners[(contract, int(args["tokenId"]))] = None if to == ZERO_ADDRESS else to


def _bind_transfer(state: dict[str, Any], contract: str, names: tuple[str, ...]) -> _FoldStep:
    """_fold_transfer for one contract's Transfer with these argument names, on value tuples."""
    if names == ("from", "to", "value"):
        deltas: defaultdict[tuple[str, str], int] = state.setdefault("deltas", defaultdict(int))

        def erc20(values: tuple[Any, ...]) -> None:
            frm, to, value = values
            if frm != ZERO_ADDRESS:
                deltas[(contract, frm)] -= value
            if to != ZERO_ADDRESS:
                deltas[(contract, to)] += value

        return erc20
    if names == ("from", "to", "tokenId"):
        owners: dict[tuple[str, int], str | None] = state.setdefault("owners", {})

        def erc721(values: tuple[Any, ...]) -> None:
            _, to, token_id = values
            owners[(contract, token_id)] = None if to == ZERO_ADDRESS else to

        return erc721

    def other(values: tuple[Any, ...]) -> None:
        _fold_transfer(state, contract, dict(zip(names, values, strict=True)))

    return other


def _finish_transfers(s: Session, chain_id: int, state: dict[str, Any]) -> None:
    if "deltas" in state:
        _apply_balances(s, chain_id, state["deltas"])
    if "owners" in state:
        _set_owners(s, chain_id, state["owners"])


# One upsert per (token, holder) per chunk, folded as the chunk is decoded.
TOKEN_PROJECTION = Handler(
    "Transfer",
    apply_transfers,
    revert_transfers,
    fold=_Fold(_fold_transfer, _finish_transfers, _bind_transfer),
)
_HANDLERS.append(TOKEN_PROJECTION)


# ---------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class Difference:
    """One place where the SQL projection and the chain disagree."""

    chain_id: int
    contract_address: str
    kind: str  # "balance", "total_supply", "owner", "nft_balance"
    subject: str  # holder address, token id, or "" for totals
    block_number: int
    sql_value: str
    chain_value: str


def _selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def _has_function(artifact_name: str, name: str) -> bool:
    return any(
        i.get("type") == "function" and i.get("name") == name for i in artifact(artifact_name).abi
    )


def _transfer_kind(artifact_name: str) -> str | None:
    for item in artifact(artifact_name).abi:
        if item.get("type") == "event" and item.get("name") == "Transfer":
            names = [i["name"] for i in item["inputs"]]
            if "value" in names:
                return "erc20"
            if "tokenId" in names:
                return "erc721"
    return None


def reconcile(engine: Engine, rpc: JsonRpc, chain_id: int) -> tuple[int, list[Difference]]:
    """Compare every projected ERC-20 balance (and total supply) and ERC-721 owner with chain
    reads at the block each contract is indexed to. Returns (values checked, differences)."""
    diffs: list[Difference] = []
    checked = 0
    with Session(engine) as s:
        watched = list(
            s.scalars(select(WatchedContract).where(WatchedContract.chain_id == chain_id))
        )
        for w in watched:
            kind = _transfer_kind(w.artifact)
            if (
                kind is None
                or w.synced_to < w.from_block
                or not _has_function(w.artifact, "balanceOf")
            ):
                continue
            block = hex(w.synced_to)

            def call(data: str, block: str = block, to: str = w.address) -> tuple[str, list[Any]]:
                return ("eth_call", [{"to": to, "data": data}, block])

            if kind == "erc20":
                rows = s.execute(
                    select(TokenBalance.holder, TokenBalance.amount).where(
                        TokenBalance.chain_id == chain_id,
                        TokenBalance.contract_address == w.address,
                    )
                ).all()
                # The projection sums Transfer events; a token whose balanceOf leaves out
                # expired points (RegionPoints) reports that sum as rawBalanceOf.
                sel = _selector(
                    "rawBalanceOf(address)"
                    if _has_function(w.artifact, "rawBalanceOf")
                    else "balanceOf(address)"
                )
                calls = [call(sel + abi_encode(["address"], [h]).hex()) for h, _ in rows]
                has_supply = _has_function(w.artifact, "totalSupply")
                if has_supply:
                    calls.append(call(_selector("totalSupply()")))
                results = _batched(rpc, calls)
                for (holder, amount), raw in zip(rows, results, strict=False):
                    checked += 1
                    if int(raw, 16) != int(amount):
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "balance",
                                holder,
                                w.synced_to,
                                str(int(amount)),
                                str(int(raw, 16)),
                            )
                        )
                if has_supply:
                    checked += 1
                    total = sum(int(a) for _, a in rows)
                    on_chain = int(results[-1], 16)
                    if total != on_chain:
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "total_supply",
                                "",
                                w.synced_to,
                                str(total),
                                str(on_chain),
                            )
                        )
            else:
                owned = s.execute(
                    select(TokenOwner.token_id, TokenOwner.owner).where(
                        TokenOwner.chain_id == chain_id, TokenOwner.contract_address == w.address
                    )
                ).all()
                sel = _selector("ownerOf(uint256)")
                results = _batched(
                    rpc, [call(sel + abi_encode(["uint256"], [int(t)]).hex()) for t, _ in owned]
                )
                counts: dict[str, int] = defaultdict(int)
                for (token_id, owner), raw in zip(owned, results, strict=True):
                    checked += 1
                    counts[owner] += 1
                    chain_owner = (
                        _checksum("0x" + raw[-40:]) if raw and raw != "0x" else ZERO_ADDRESS
                    )
                    if chain_owner != owner:
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "owner",
                                str(int(token_id)),
                                w.synced_to,
                                owner,
                                chain_owner,
                            )
                        )
                sel = _selector("balanceOf(address)")
                holders = sorted(counts)
                results = _batched(
                    rpc, [call(sel + abi_encode(["address"], [h]).hex()) for h in holders]
                )
                for holder, raw in zip(holders, results, strict=True):
                    checked += 1
                    if int(raw, 16) != counts[holder]:
                        diffs.append(
                            Difference(
                                chain_id,
                                w.address,
                                "nft_balance",
                                holder,
                                w.synced_to,
                                str(counts[holder]),
                                str(int(raw, 16)),
                            )
                        )
    return checked, diffs


def _batched(rpc: JsonRpc, calls: list[tuple[str, list[Any]]], size: int = 200) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(calls), size):
        try:
            out += rpc.batch(calls[i : i + size])
        except RpcError:
            # A reverting call (e.g. ownerOf a burnt token) fails the batch: go one by one.
            for method, params in calls[i : i + size]:
                try:
                    out.append(rpc.call(method, params))
                except RpcError:
                    out.append("0x")
    return out


def store_report(engine: Engine, chain_id: int, checked: int, diffs: list[Difference]) -> int:
    """Save a reconciliation report; returns its id."""
    with Session(engine) as s, s.begin():
        report = ReconciliationReport(
            chain_id=chain_id,
            checked=checked,
            ok=not diffs,
            differences=[d.__dict__ for d in diffs],
        )
        s.add(report)
        s.flush()
        return report.id


def projection_snapshot(engine: Engine, chain_id: int) -> dict[str, Any]:
    """Everything the indexer projects for a chain, as plain sorted data (tests, re-scan diff)."""
    with Session(engine) as s:
        events = s.execute(
            select(
                ChainEventRecord.contract_address,
                ChainEventRecord.event_name,
                ChainEventRecord.args,
                ChainEventRecord.block_number,
                ChainEventRecord.block_hash,
                ChainEventRecord.tx_hash,
                ChainEventRecord.log_index,
            )
            .where(ChainEventRecord.chain_id == chain_id)
            .order_by(ChainEventRecord.block_number, ChainEventRecord.log_index)
        ).all()
        balances = s.execute(
            select(TokenBalance.contract_address, TokenBalance.holder, TokenBalance.amount)
            .where(TokenBalance.chain_id == chain_id, TokenBalance.amount != 0)
            .order_by(TokenBalance.contract_address, TokenBalance.holder)
        ).all()
        owners = s.execute(
            select(TokenOwner.contract_address, TokenOwner.token_id, TokenOwner.owner)
            .where(TokenOwner.chain_id == chain_id)
            .order_by(TokenOwner.contract_address, TokenOwner.token_id)
        ).all()
        count = s.scalar(
            select(func.count())
            .select_from(ChainEventRecord)
            .where(ChainEventRecord.chain_id == chain_id)
        )
    return {
        "events": [tuple(r) for r in events],
        "event_count": count,
        "balances": [(c, h, int(a)) for c, h, a in balances],
        "owners": [(c, int(t), o) for c, t, o in owners],
    }
