"""The chain package's errors, under one root: `except ChainError` catches anything that went
wrong talking to the node or about the chain's contracts and keys.

Each class keeps the base it had before the root existed (e.g. ChainUnavailable and RpcError
are still RuntimeErrors, RegistryError a LookupError), so every existing `except` still
catches what it caught. The classes stay importable from their old modules.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ChainError(Exception):
    """The root of the chain package's errors."""


class ChainUnavailable(ChainError, RuntimeError):
    """The RPC endpoint did not answer."""


class RpcUnavailable(ChainUnavailable):
    """The RPC endpoint did not answer (connection refused, timeout, 5xx)."""


class ErrorKind(StrEnum):
    ALREADY_KNOWN = "already_known"
    NONCE_TOO_LOW = "nonce_too_low"
    REPLACEMENT_UNDERPRICED = "replacement_underpriced"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REVERTED = "reverted"
    OTHER = "other"


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


class RpcError(ChainError, RuntimeError):
    """The node answered a call with a JSON-RPC error; `kind` classifies it. (A RuntimeError
    as the indexer's was; the outbox's was a plain Exception, which this still is.)"""

    def __init__(self, code: int, message: str, data: Any = None, *, method: str = "") -> None:
        super().__init__(f"{method}: {code}: {message}" if method else f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data
        self.method = method

    @classmethod
    def of(cls, error: Any, method: str = "") -> RpcError:
        """From the `error` member of a JSON-RPC answer (an object, or whatever a node sent)."""
        if isinstance(error, dict):
            try:
                code = int(error.get("code", 0) or 0)
            except (TypeError, ValueError):
                code = 0
            return cls(code, str(error.get("message", "")), error.get("data"), method=method)
        return cls(0, str(error), method=method)

    @property
    def kind(self) -> ErrorKind:
        return classify_error(self.message)


class IndexerError(ChainError, RuntimeError):
    """The indexer cannot go on (e.g. a contract's artifact is unknown)."""
