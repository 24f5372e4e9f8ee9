"""Errors of the outbox: the ones callers see (idempotency, stale request, gas budget), the
RPC endpoint's (unavailable, JSON-RPC error responses and their classification) and the
decoding of a contract's revert data."""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from backend.chain.gateway import ChainUnavailable
from backend.chain.registry import ABI_DIR
from backend.core.errors import AppError, Conflict


class IdempotencyConflict(Conflict):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"


class StaleForwardRequest(Conflict):
    """A browser-signed request does not carry the user's next forwarder nonce."""

    code = "stale_forward_request"


class GasBudgetExceeded(AppError):
    """The user has used up today's gas budget."""

    status = 429
    code = "gas_budget_exceeded"


class RpcUnavailable(ChainUnavailable):
    """The RPC endpoint did not answer (connection refused, timeout, 5xx)."""


class ErrorKind(StrEnum):
    ALREADY_KNOWN = "already_known"
    NONCE_TOO_LOW = "nonce_too_low"
    REPLACEMENT_UNDERPRICED = "replacement_underpriced"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REVERTED = "reverted"
    OTHER = "other"


class RpcError(Exception):
    """A JSON-RPC error response; `kind` classifies it."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> ErrorKind:
        return classify_error(self.message)


def classify_error(message: str) -> ErrorKind:
    """Map a node's error text (geth, anvil, erigon, nethermind wordings) to an ErrorKind."""
    m = message.lower()
    if "already known" in m or "already imported" in m or "known transaction" in m:
        return ErrorKind.ALREADY_KNOWN
    if "nonce too low" in m or "nonce is too low" in m or "oldnonce" in m:
        return ErrorKind.NONCE_TOO_LOW
    if "underpriced" in m or "fee too low" in m:
        return ErrorKind.REPLACEMENT_UNDERPRICED
    if "insufficient funds" in m or "insufficient balance" in m:
        return ErrorKind.INSUFFICIENT_FUNDS
    if "revert" in m:
        return ErrorKind.REVERTED
    return ErrorKind.OTHER


@cache
def _error_selectors() -> dict[str, tuple[str, list[str]]]:
    out: dict[str, tuple[str, list[str]]] = {
        "0x08c379a0": ("Error", ["string"]),
        "0x4e487b71": ("Panic", ["uint256"]),
    }
    for path in sorted(Path(ABI_DIR).glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                types = [_abi_type(i) for i in item["inputs"]]
                sig = f"{item['name']}({','.join(types)})"
                out["0x" + keccak(text=sig)[:4].hex()] = (item["name"], types)
    return out


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return str(inp["type"])


def decode_revert(data: Any) -> str:
    """A custom error's name and arguments from revert data, e.g. 'RegionPointsZeroAmount()'."""
    from eth_abi import decode as abi_decode

    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return "unknown revert"
    sel = data[:10].lower()
    known = _error_selectors().get(sel)
    if known is None:
        return f"unknown error {sel}"
    name, types = known
    try:
        values = abi_decode(types, bytes.fromhex(data[10:]))
    except Exception:  # malformed payload: the name is still useful
        return f"{name}(?)"
    return f"{name}({', '.join(str(v) for v in values)})"
