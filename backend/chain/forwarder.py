"""ERC-2771 forward requests: EIP-712 typed data for FurusatoForwarder, signing, and encoding.

A user's action is a `ForwardRequest` (from, to, value, gas, nonce, deadline, data) signed with
the user's key under the domain ("FurusatoForwarder", "1", chain id, forwarder address). A relayer
then calls `execute(ForwardRequestData)` and pays the gas. The nonce is the user's forwarder
nonce, so a request can run at most once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cache, lru_cache
from typing import Any, Protocol, runtime_checkable

import coincurve
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from backend.chain.registry import artifact

FORWARDER_NAME = "FurusatoForwarder"
FORWARDER_VERSION = "1"
_EXECUTE_SELECTOR = keccak(text="execute((address,address,uint256,uint256,uint48,bytes,bytes))")[:4]
_REQUEST_DATA_TYPE = "(address,address,uint256,uint256,uint48,bytes,bytes)"

FORWARD_REQUEST_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "ForwardRequest": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "gas", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint48"},
        {"name": "data", "type": "bytes"},
    ],
}
# EIP-712 hashing of the two fixed types above, done directly (eth_account's generic
# encode_typed_data walks the type tree for every message; the digest is the same).
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_REQUEST_TYPEHASH = keccak(
    text="ForwardRequest(address from,address to,uint256 value,uint256 gas,uint256 nonce,"
    "uint48 deadline,bytes data)"
)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@runtime_checkable
class Signer(Protocol):
    """Anything that signs EIP-712 typed data for one address: a custodial vault's
    `KeyVault.signer(sealed)`, a `LocalSigner`, or a test double.

    `sign_typed_data` returns the 65-byte signature, or an object with a `.signature`
    attribute (eth_account's `SignedMessage`).
    """

    @property
    def address(self) -> str: ...

    def sign_typed_data(self, full_message: dict[str, Any]) -> Any: ...


class LocalSigner:
    """A `Signer` over a private key held in memory (relayer tooling, tests, benchmarks).

    Besides `sign_typed_data` it offers `sign_eip712_digest`, which `sign_request` uses to sign
    a forward request's digest directly (the same signature, ~10x less work).
    """

    __slots__ = ("_account", "_key")

    def __init__(self, private_key: str | bytes) -> None:
        self._account = Account.from_key(private_key)
        self._key = coincurve.PrivateKey(bytes(self._account.key))

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_typed_data(self, full_message: dict[str, Any]) -> Any:
        return self._account.sign_typed_data(full_message=full_message)

    def sign_eip712_digest(self, digest: bytes) -> bytes:
        """The 65-byte signature (r, s, v = 27/28) of an EIP-712 digest (0x1901 || ...)."""
        return sign_digest(self._key, digest)

    def __repr__(self) -> str:
        return f"LocalSigner(address={self.address!r})"


@dataclass(frozen=True)
class ForwardRequest:
    """A user's request as signed (addresses checksummed, data as 0x-hex)."""

    from_address: str
    to: str
    value: int
    gas: int
    nonce: int
    deadline: int
    data: str
    signature: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ForwardRequest:
        return cls(
            from_address=to_checksum_address(data["from_address"]),
            to=to_checksum_address(data["to"]),
            value=int(data["value"]),
            gas=int(data["gas"]),
            nonce=int(data["nonce"]),
            deadline=int(data["deadline"]),
            data=str(data["data"]),
            signature=str(data.get("signature", "")),
        )


def typed_data(request: ForwardRequest, chain_id: int, forwarder: str) -> dict[str, Any]:
    """The EIP-712 `full_message` a user signs for `request` (what a browser wallet gets)."""
    return {
        "types": FORWARD_REQUEST_TYPES,
        "primaryType": "ForwardRequest",
        "domain": {
            "name": FORWARDER_NAME,
            "version": FORWARDER_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(forwarder),
        },
        "message": {
            "from": request.from_address,
            "to": request.to,
            "value": request.value,
            "gas": request.gas,
            "nonce": request.nonce,
            "deadline": request.deadline,
            "data": request.data,
        },
    }


@lru_cache(maxsize=64)
def domain_separator(chain_id: int, forwarder: str) -> bytes:
    """EIP-712 domain separator of FurusatoForwarder on one chain (computed once per pair)."""
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(text=FORWARDER_NAME)
        + keccak(text=FORWARDER_VERSION)
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(forwarder.removeprefix("0x").lower()).rjust(32, b"\0")
    )


def request_digest(request: ForwardRequest, chain_id: int, forwarder: str) -> bytes:
    """The EIP-712 digest of `request` (what `sign_typed_data(typed_data(...))` signs)."""
    struct_hash = keccak(
        _REQUEST_TYPEHASH
        + bytes.fromhex(request.from_address.removeprefix("0x")).rjust(32, b"\0")
        + bytes.fromhex(request.to.removeprefix("0x")).rjust(32, b"\0")
        + request.value.to_bytes(32, "big")
        + request.gas.to_bytes(32, "big")
        + request.nonce.to_bytes(32, "big")
        + request.deadline.to_bytes(32, "big")
        + keccak(bytes.fromhex(request.data.removeprefix("0x")))
    )
    return keccak(b"\x19\x01" + domain_separator(chain_id, forwarder) + struct_hash)


def sign_digest(key: coincurve.PrivateKey, digest: bytes) -> bytes:
    """r || s || v (v = 27/28) over a 32-byte digest; RFC 6979 and low-s, as eth_account."""
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def sign_request(
    signer: Signer, request: ForwardRequest, chain_id: int, forwarder: str
) -> ForwardRequest:
    """Return `request` with the signer's signature; the signer must be `request.from_address`.

    A signer with `sign_eip712_digest(digest) -> bytes` (LocalSigner) signs the digest computed
    here; any other signer gets the full typed data (`sign_typed_data`), as a wallet would.
    """
    if signer.address.lower() != request.from_address.lower():
        raise ValueError(f"signer {signer.address} cannot sign for {request.from_address}")
    sign_digest_fn = getattr(signer, "sign_eip712_digest", None)
    if sign_digest_fn is not None:
        sig: Any = sign_digest_fn(request_digest(request, chain_id, forwarder))
    else:
        signed = signer.sign_typed_data(full_message=typed_data(request, chain_id, forwarder))
        sig = getattr(signed, "signature", signed)
    sig_hex = sig.hex() if isinstance(sig, (bytes, bytearray)) else str(sig)
    return replace(request, signature="0x" + sig_hex.removeprefix("0x"))


def recover_signer(request: ForwardRequest, chain_id: int, forwarder: str) -> str:
    """The address that signed `request` (to reject a browser request signed by someone else).

    Raises ValueError for a malformed signature.
    """
    sig = bytes.fromhex(request.signature.removeprefix("0x"))
    if len(sig) != 65 or sig[64] not in (0, 1, 27, 28):
        raise ValueError("a forward request signature is 65 bytes with v in 27/28")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        raise ValueError("a forward request signature needs 0 < r, s < n")
    digest = request_digest(request, chain_id, forwarder)
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            sig[:64] + bytes([sig[64] % 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises a bare Exception when nothing recovers
        raise ValueError("the forward request signature recovers no key") from exc
    return str(to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:]))


def execute_calldata(request: ForwardRequest) -> str:
    """Calldata of `FurusatoForwarder.execute(request)`, as 0x-hex."""
    body = abi_encode(
        [_REQUEST_DATA_TYPE],
        [
            (
                request.from_address,
                request.to,
                request.value,
                request.gas,
                request.deadline,
                bytes.fromhex(request.data.removeprefix("0x")),
                bytes.fromhex(request.signature.removeprefix("0x")),
            )
        ],
    )
    return "0x" + (_EXECUTE_SELECTOR + body).hex()


def relay_gas_limit(request: ForwardRequest) -> int:
    """Gas limit of the relayer's transaction for `request`.

    The forwarder checks that the call kept at least gas/63 after it (EIP-150), so the outer limit
    covers request.gas * 64/63, the forwarder's own work (signature recovery, nonce, event) and the
    calldata. Only gas used is paid: the margin costs nothing.
    """
    calldata_bytes = len(execute_calldata(request)) // 2
    return request.gas * 64 // 63 + 60_000 + 16 * calldata_bytes


@cache
def _contract(artifact_name: str) -> Any:
    return Web3().eth.contract(abi=artifact(artifact_name).abi)


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return str(inp["type"])


@cache
def _plain_function(artifact_name: str, function: str) -> tuple[bytes, tuple[str, ...]] | None:
    """Selector and argument types of a function that is not overloaded (else None)."""
    found = [
        item
        for item in artifact(artifact_name).abi
        if item["type"] == "function" and item["name"] == function
    ]
    if len(found) != 1:
        return None
    types = tuple(_abi_type(i) for i in found[0]["inputs"])
    return keccak(text=f"{function}({','.join(types)})")[:4], types


def encode_call(artifact_name: str, function: str, args: list[Any]) -> str:
    """Calldata of `function(*args)` of the compiled contract `artifact_name`, as 0x-hex."""
    plain = _plain_function(artifact_name, function)
    if plain is not None and all(isinstance(a, (int, str, bool)) for a in args):
        selector, types = plain
        values = [
            bytes.fromhex(a.removeprefix("0x")) if t.startswith("bytes") and isinstance(a, str)
            else (to_checksum_address(a) if t == "address" else a)
            for t, a in zip(types, args, strict=True)
        ]  # fmt: skip
        return "0x" + (selector + abi_encode(list(types), values)).hex()
    data = _contract(artifact_name).encode_abi(function, args=list(args))  # overloads, tuples
    return "0x" + str(data).removeprefix("0x")
