"""The outbox's JSON-RPC client: plain HTTP with batching (one POST for many calls)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import requests

from backend.chain.outbox.errors import RpcError, RpcUnavailable


class RpcClient:
    """Plain JSON-RPC over HTTP with batching (one POST for many calls)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._local = threading.local()
        self._ids = 0

    def _http(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _post(self, payload: Any) -> Any:
        try:
            try:
                resp = self._http().post(self.url, json=payload, timeout=self.timeout)
            except requests.ConnectionError:
                # A pooled keep-alive connection the server dropped: one retry on a fresh one
                # (every call here is safe to repeat; a re-sent transaction is "already known").
                self._local.session = None
                resp = self._http().post(self.url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RpcUnavailable(f"{type(exc).__name__} talking to the RPC endpoint") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise RpcUnavailable(f"RPC endpoint answered HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError as exc:
            raise RpcUnavailable("RPC endpoint answered with something other than JSON") from exc

    @staticmethod
    def _result(item: dict[str, Any]) -> Any:
        if "error" in item and item["error"] is not None:
            err = item["error"]
            return RpcError(int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return item.get("result")

    def call(self, method: str, params: list[Any]) -> Any:
        """One call; raises RpcUnavailable or RpcError."""
        result = self._result(
            self._post({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        )
        if isinstance(result, RpcError):
            raise result
        return result

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Many calls in one request; each result is a value or an RpcError (not raised)."""
        if not calls:
            return []
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answer = self._post(payload)
        if not isinstance(answer, list):
            err = self._result(answer)
            return [err if isinstance(err, RpcError) else RpcError(0, "bad batch")] * len(calls)
        by_id = {item.get("id"): item for item in answer}
        return [
            self._result(by_id[i]) if i in by_id else RpcError(0, "missing batch answer")
            for i in range(len(calls))
        ]
