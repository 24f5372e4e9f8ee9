"""Fetching chunks: eth_getLogs requested ahead so the node computes the next chunks while
this process decodes and writes the current one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests

from backend.chain.errors import ChainUnavailable
from backend.chain.rpc import JsonRpc, PendingLogs, RpcError

log = logging.getLogger(__name__)


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
