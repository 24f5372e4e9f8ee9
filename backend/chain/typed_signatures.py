"""Checking EIP-712 signatures made in a browser wallet (eth_signTypedData_v4).

The only place outside the rest of backend/chain that recovers a typed-data signer, so the
domains stay free of eth_account. Malformed signatures recover to None, never raise.
"""

from __future__ import annotations

import re
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

from backend.chain.forwarder import ForwardRequest, encode_call, typed_data

_SIG_RE = re.compile(r"0x[0-9a-fA-F]{130}")
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


def is_signature(value: object) -> bool:
    """A 65-byte 0x-hex signature with a low s (what OpenZeppelin's ECDSA accepts)."""
    if not isinstance(value, str) or not _SIG_RE.fullmatch(value):
        return False
    v, _r, s = split_signature(value)
    return v in (27, 28) and 0 < s <= _SECP256K1_HALF_N


def split_signature(signature: str) -> tuple[int, int, int]:
    """(v, r, s) of a 65-byte 0x-hex signature; v is 27 or 28 (wallets may give 0 or 1)."""
    raw = bytes.fromhex(signature.removeprefix("0x"))
    v = raw[64]
    return (v + 27 if v < 27 else v), int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64])


def recover_typed_data(full_message: dict[str, Any], signature: object) -> str | None:
    """The checksummed address that signed `full_message`, or None (malformed signature)."""
    if not is_signature(signature):
        return None
    assert isinstance(signature, str)  # noqa: S101 - checked by is_signature
    v, r, s = split_signature(signature)
    try:
        message = encode_typed_data(full_message=full_message)
        return str(Account.recover_message(message, vrs=(v, r, s)))
    except Exception:  # noqa: BLE001 - any decoding failure means "not a valid signature"
        return None


def recover_forward_request(
    request: ForwardRequest, signature: object, chain_id: int, forwarder: str
) -> str | None:
    """The address that signed the ERC-2771 `request` (typed data of FurusatoForwarder)."""
    return recover_typed_data(typed_data(request, chain_id, forwarder), signature)


def check_forward_request(
    data: object,
    *,
    user: str,
    target: str,
    artifact_name: str,
    function: str,
    args: list[Any],
    chain_id: int,
    forwarder: str,
    max_gas: int = 3_000_000,
) -> tuple[ForwardRequest | None, str]:
    """A browser-signed forward request (its JSON with "signature") checked to be exactly
    `function(*args)` on `target`, sent by `user` and signed by `user`.

    Returns (request, "") or (None, reason) with reason "malformed", "wrong_call" or
    "bad_signature". The nonce is checked when the outbox takes it.
    """
    if not isinstance(data, dict):
        return None, "malformed"
    try:
        req = ForwardRequest.from_json(data)
    except (KeyError, ValueError, TypeError):
        return None, "malformed"
    expected = encode_call(artifact_name, function, args)
    if (
        req.from_address != to_checksum_address(user)
        or req.to != to_checksum_address(target)
        or req.value != 0
        or not 0 < req.gas <= max_gas
        or req.data.lower() != expected.lower()
    ):
        return None, "wrong_call"
    if recover_forward_request(req, req.signature, chain_id, forwarder) != req.from_address:
        return None, "bad_signature"
    return req, ""


# ---------------------------------------------------------------- PrimarySale vouchers

VOUCHER_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Voucher": [
        {"name": "buyer", "type": "address"},
        {"name": "listingId", "type": "uint256"},
        {"name": "maxQuantity", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


def voucher_typed_data(
    *,
    chain_id: int,
    sale: str,
    buyer: str,
    listing_id: int,
    max_quantity: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The EIP-712 message of a PrimarySale allowlist voucher (PrimarySale.voucherDigest): bound
    to the chain, the sale contract, the buyer, the listing, a one-time nonce and a deadline."""
    return {
        "types": VOUCHER_TYPES,
        "primaryType": "Voucher",
        "domain": {
            "name": "FurusatoPrimarySale",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(sale),
        },
        "message": {
            "buyer": to_checksum_address(buyer),
            "listingId": listing_id,
            "maxQuantity": max_quantity,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def sign_typed_data_with(private_key: Any, full_message: dict[str, Any]) -> str:
    """A 65-byte 0x-hex EIP-712 signature of `full_message` by `private_key` (a LocalAccount's
    key); only the worker, which holds role keys, calls this."""
    signed = Account.sign_typed_data(private_key, full_message=full_message)
    return "0x" + bytes(signed.signature).hex()
