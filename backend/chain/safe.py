"""Safe 1.4.1 multisig helpers: deploy a Safe (proxy) and propose, sign and execute a transaction.

The artifacts are Safe's own published build (`@safe-global/safe-contracts` 1.4.1), vendored into
safe_abi/ by scripts/vendor_safe.py, so nothing here needs node_modules. A town guardian is a
SafeL2 proxy whose owners are people (the mayor's office, the assembly, an auditor); the platform
never holds a guardian owner key outside a local test chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from backend.chain.registry import artifact

ZERO_ADDRESS = "0x" + "00" * 20
CALL = 0  # Enum.Operation.Call (never DelegateCall for a guardian)

Send = Callable[[Any], Any]  # send(contract_function) -> receipt


def contract(w3: Web3, name: str, address: str) -> Any:
    """A bound Safe contract (`SafeL2`, `SafeProxyFactory`, `CompatibilityFallbackHandler`)."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name).abi)


def setup_data(w3: Web3, owners: Sequence[str], threshold: int, fallback_handler: str) -> bytes:
    """The `Safe.setup` call a new proxy is initialised with (no module, no refund)."""
    singleton = w3.eth.contract(abi=artifact("SafeL2").abi)
    data = singleton.encode_abi(
        "setup",
        [
            [Web3.to_checksum_address(o) for o in owners],
            int(threshold),
            ZERO_ADDRESS,
            b"",
            Web3.to_checksum_address(fallback_handler),
            ZERO_ADDRESS,
            0,
            ZERO_ADDRESS,
        ],
    )
    return bytes.fromhex(data.removeprefix("0x"))


def create_safe(
    w3: Web3,
    send: Send,
    *,
    factory: str,
    singleton: str,
    fallback_handler: str,
    owners: Sequence[str],
    threshold: int,
    salt: int,
) -> tuple[str, Any]:
    """Create a Safe proxy through the factory; returns (address, receipt)."""
    f = contract(w3, "SafeProxyFactory", factory)
    init = setup_data(w3, owners, threshold, fallback_handler)
    rcpt = send(
        f.functions.createProxyWithNonce(Web3.to_checksum_address(singleton), init, int(salt))
    )
    (event,) = f.events.ProxyCreation().process_receipt(rcpt, errors=DISCARD)
    return str(event["args"]["proxy"]), rcpt


@dataclass(frozen=True)
class SafeTx:
    """A Safe transaction (a plain call, no gas refund)."""

    to: str
    data: bytes
    value: int = 0
    nonce: int | None = None  # None: the Safe's current nonce

    def args(self) -> list[Any]:
        return [Web3.to_checksum_address(self.to), int(self.value), self.data, CALL, 0, 0, 0]


def tx_hash(safe: Any, tx: SafeTx) -> bytes:
    """The EIP-712 hash the owners sign (`Safe.getTransactionHash`)."""
    nonce = safe.functions.nonce().call() if tx.nonce is None else tx.nonce
    return bytes(
        safe.functions.getTransactionHash(*tx.args(), ZERO_ADDRESS, ZERO_ADDRESS, int(nonce)).call()
    )


def sign(hash_: bytes, keys: Sequence[str]) -> bytes:
    """Owner signatures `r‖s‖v` over `hash_`, concatenated in ascending owner address order (the
    order `Safe.checkNSignatures` requires)."""
    signed = []
    for key in keys:
        acct = Account.from_key(key)
        sig = acct.unsafe_sign_hash(hash_)
        body = sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v])
        signed.append((int(acct.address, 16), body))
    return b"".join(body for _, body in sorted(signed))


def exec_transaction(safe: Any, send: Send, tx: SafeTx, owner_keys: Sequence[str]) -> Any:
    """Sign `tx` with `owner_keys` and execute it (the sender pays gas; any account may send).
    Returns the receipt; a Safe whose inner call reverted emits ExecutionFailure, so check it."""
    signatures = sign(tx_hash(safe, tx), owner_keys)
    rcpt = send(safe.functions.execTransaction(*tx.args(), ZERO_ADDRESS, ZERO_ADDRESS, signatures))
    if safe.events.ExecutionFailure().process_receipt(rcpt, errors=DISCARD):
        raise RuntimeError("the Safe transaction's call reverted (ExecutionFailure)")
    return rcpt
