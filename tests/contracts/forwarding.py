"""The ERC-2771 forward request as FurusatoForwarder (OZ ERC2771Forwarder) hashes it."""

from __future__ import annotations

from typing import Any

FORWARD_REQUEST_TYPES: dict[str, Any] = {
    "ForwardRequest": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "gas", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint48"},
        {"name": "data", "type": "bytes"},
    ]
}


def forwarder_domain(chain_id: int, forwarder_address: str) -> dict[str, Any]:
    return {
        "name": "FurusatoForwarder",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": forwarder_address,
    }
