"""Errors of the outbox: the ones callers see (idempotency, stale request, gas budget), the
RPC endpoint's (unavailable, JSON-RPC error responses and their classification: defined once in
backend/chain/errors.py) and the decoding of a contract's revert data. All are ChainErrors."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

from backend.chain.errors import (
    ChainError,
    ErrorKind,
    RpcError,
    RpcUnavailable,
    classify_error,
)
from backend.chain.registry import ABI_DIR
from backend.core.errors import AppError, Conflict

# The RPC endpoint's errors are the chain package's (backend/chain/errors.py), kept importable here.
__all__ = [
    "ErrorKind",
    "GasBudgetExceeded",
    "IdempotencyConflict",
    "RpcError",
    "RpcUnavailable",
    "StaleForwardRequest",
    "classify_error",
    "decode_revert",
]


class IdempotencyConflict(Conflict, ChainError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"


class StaleForwardRequest(Conflict, ChainError):
    """A browser-signed request does not carry the user's next forwarder nonce."""

    code = "stale_forward_request"


class GasBudgetExceeded(AppError, ChainError):
    """The user has used up today's gas budget."""

    status = 429
    code = "gas_budget_exceeded"


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
