"""ERC-2771 forward requests: EIP-712 typed data for FurusatoForwarder, signing, and encoding.

A user's action is a `ForwardRequest` (from, to, value, gas, nonce, deadline, data) signed with
the user's key under the domain ("FurusatoForwarder", "1", chain id, forwarder address). A relayer
then calls `execute(ForwardRequestData)` and pays the gas. The nonce is the user's forwarder
nonce, so a request can run at most once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, Protocol, runtime_checkable

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
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
    """A `Signer` over a private key held in memory (relayer tooling, tests, benchmarks)."""

    __slots__ = ("_account",)

    def __init__(self, private_key: str | bytes) -> None:
        self._account = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign_typed_data(self, full_message: dict[str, Any]) -> Any:
        return self._account.sign_typed_data(full_message=full_message)

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


def sign_request(
    signer: Signer, request: ForwardRequest, chain_id: int, forwarder: str
) -> ForwardRequest:
    """Return `request` with the signer's signature; the signer must be `request.from_address`."""
    if signer.address.lower() != request.from_address.lower():
        raise ValueError(f"signer {signer.address} cannot sign for {request.from_address}")
    signed = signer.sign_typed_data(full_message=typed_data(request, chain_id, forwarder))
    sig = getattr(signed, "signature", signed)
    sig_hex = sig.hex() if isinstance(sig, (bytes, bytearray)) else str(sig)
    return ForwardRequest(**{**asdict(request), "signature": "0x" + sig_hex.removeprefix("0x")})


def recover_signer(request: ForwardRequest, chain_id: int, forwarder: str) -> str:
    """The address that signed `request` (to reject a browser request signed by someone else)."""
    message = encode_typed_data(full_message=typed_data(request, chain_id, forwarder))
    return str(Account.recover_message(message, signature=request.signature))


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
