"""The chain package's JSON-RPC client (backend/chain/rpc.py: the indexer's JsonRpc, and the
RpcClient of the outbox and the gateway) against a local HTTP server that misbehaves like real
nodes and proxies do: it closes kept-alive connections without saying so, and answers 503."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend.chain.errors import ChainError, ErrorKind, RpcError
from backend.chain.gateway import ChainUnavailable
from backend.chain.indexer import JsonRpc
from backend.chain.rpc import RpcClient


class _Node(ThreadingHTTPServer):
    status = 200
    connections = 0
    calls: list[str]
    closed: threading.Event  # set when the node has closed a connection

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # advertises keep-alive
    server: _Node

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reqs = req if isinstance(req, list) else [req]
        self.server.calls.extend(r["method"] for r in reqs)
        answers = [
            {"jsonrpc": "2.0", "id": r["id"], "error": {"code": -32000, "message": "nonce too low"}}
            if r["method"] == "eth_sendRawTransaction"
            else {"jsonrpc": "2.0", "id": r["id"], "result": "0x2a"}
            for r in reqs
        ]
        out = json.dumps(answers if isinstance(req, list) else answers[0]).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        self.close_connection = True  # and closes it anyway, as an idle timeout would

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[_Node]:
    server = _Node(("127.0.0.1", 0), _Handler)
    server.calls = []
    server.closed = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_connection_the_node_closed_is_replaced_before_the_next_call(node: _Node) -> None:
    rpc = JsonRpc(f"http://127.0.0.1:{node.server_port}", timeout=5)
    assert rpc.block_number() == 42
    # Between the calls, as an idle timeout would (a close racing a send is another matter:
    # that call fails with ChainUnavailable and is not resent).
    assert node.closed.wait(5)
    assert rpc.block_number() == 42  # not an error: the closed connection is not reused
    assert node.calls == ["eth_blockNumber", "eth_blockNumber"]  # each call sent once
    assert node.connections == 2
    rpc.close()


def test_node_errors_and_no_node_are_chain_unavailable(node: _Node) -> None:
    rpc = JsonRpc(f"http://127.0.0.1:{node.server_port}", timeout=5)
    node.status = 503
    with pytest.raises(ChainUnavailable, match="503"):
        rpc.block_number()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(ChainUnavailable):
        JsonRpc(f"http://127.0.0.1:{free}", timeout=5).block_number()


def test_a_batch_answers_each_call_its_result_or_its_error(node: _Node) -> None:
    """The outbox's batches (RpcClient: a JsonRpc per thread) get each call's JSON-RPC error as
    that call's answer, not raised; the indexer's JsonRpc.batch raises it. One RpcError class,
    under the chain package's root, classified by kind."""
    url = f"http://127.0.0.1:{node.server_port}"
    client = RpcClient(url, timeout=5)
    calls = [("eth_blockNumber", []), ("eth_sendRawTransaction", ["0x00"])]
    answers = client.batch(calls)
    assert answers[0] == "0x2a"
    assert isinstance(answers[1], RpcError) and isinstance(answers[1], ChainError)
    assert answers[1].kind is ErrorKind.NONCE_TOO_LOW and answers[1].code == -32000
    assert client.chain_id() == 42
    with pytest.raises(RpcError, match="nonce too low"):
        client.call("eth_sendRawTransaction", ["0x00"])
    rpc = JsonRpc(url, timeout=5)
    with pytest.raises(RuntimeError, match="nonce too low"):  # RpcError is still one
        rpc.batch(calls)
    rpc.close()
    client.close()
