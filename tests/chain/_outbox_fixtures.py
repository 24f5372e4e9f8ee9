"""Fixtures and helpers for the outbox and relayer tests (import them into a test module)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from web3 import Web3

from backend.chain.anvil import AnvilNode
from backend.chain.forwarder import LocalSigner
from backend.chain.outbox import OutboxService, outbox_service
from backend.chain.registry import Deployments, artifact
from backend.core.db import get_db
from tests.anvil_pool import outbox_round
from tests.chain_admin import as_role, role_address, role_key

POINTS = "towns.sarabetsu.RegionPoints"
PROGRAMME = 1
USER_KEY = "0x" + "11" * 32
OTHER_USER_KEY = "0x" + "12" * 32


@contextlib.contextmanager
def node_answering(
    svc: OutboxService, answers: dict[str, Callable[[str, list[Any]], Any]]
) -> Iterator[None]:
    """The outbox's RPC batches, with the calls named in `answers` answered by them (a node
    that gives no receipt yet, or an error, for a transaction it has)."""
    real = svc.rpc.batch

    def batch(calls: list[tuple[str, list[Any]]]) -> list[Any]:
        out = real(calls)
        return [
            answers[m](m, p) if m in answers else r for (m, p), r in zip(calls, out, strict=True)
        ]

    svc.rpc.batch = batch  # type: ignore[method-assign]
    try:
        yield
    finally:
        del svc.rpc.batch


def mine(w3: Web3, blocks: int = 1) -> None:
    w3.provider.make_request("anvil_mine", [hex(blocks)])


def points(w3: Web3, deployed: Deployments) -> Any:
    return w3.eth.contract(address=deployed.address(POINTS), abi=artifact("RegionPoints").abi)


def forwarder(w3: Web3, deployed: Deployments) -> Any:
    return w3.eth.contract(
        address=deployed.address("FurusatoForwarder"), abi=artifact("FurusatoForwarder").abi
    )


@pytest.fixture
def chain(w3: Web3, deployed: Deployments, anvil: AnvilNode) -> Web3:
    """The reverted-per-test chain with programme 1 active (points issued under it never expire)."""
    as_role(w3, "town_settings", points(w3, deployed).functions.setProgramme(PROGRAMME, 0, True))
    return w3


def give_points(w3: Web3, deployed: Deployments, anvil: AnvilNode, to: str, amount: int) -> None:
    issuer = role_address("issuer")
    points(w3, deployed).functions.issue(to, amount, PROGRAMME, "test").transact({"from": issuer})
    mine(w3)


@pytest.fixture
def user() -> LocalSigner:
    return LocalSigner(USER_KEY)


@pytest.fixture
def outbox_app(
    make_app: Callable[..., Flask], chain: Web3, anvil: AnvilNode
) -> Callable[..., Flask]:
    """Apps whose outbox relays with anvil key 7 and signs admin actions as "issuer"."""

    def build(**overrides: Any) -> Flask:
        overrides.setdefault("relayer_private_keys", anvil.keys[7])
        overrides.setdefault("role_private_keys", f"issuer={role_key('issuer')}")
        overrides.setdefault("confirmations", 0)
        app = make_app(**overrides)
        with app.app_context():
            outbox_service().auto_dispatch = False
        return app

    return build


def settle(app: Flask, w3: Web3, rounds: int = 3) -> None:
    """Send every queued row, mine, and read receipts (what the beat tasks do)."""
    with app.app_context():
        svc = outbox_service()
        for _ in range(rounds):
            outbox_round(svc, get_db().session, w3)


class ToggleProxy:
    """A TCP proxy in front of anvil that can go down (connections refused) and come back."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


@pytest.fixture
def rpc_proxy(anvil: AnvilNode) -> Iterator[ToggleProxy]:
    proxy = ToggleProxy(anvil.port)
    yield proxy
    proxy.down()
