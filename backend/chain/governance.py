"""Pure helpers for OpenZeppelin Governor proposals and gasless ballots (no RPC).

The DAO domain builds proposals and ballots with these, so it never imports web3/eth_abi itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from backend.chain.forwarder import Signer
from backend.chain.gateway import Eip712Domain

# OZ 5 Governor: Ballot(uint256 proposalId,uint8 support,address voter,uint256 nonce)
BALLOT_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Ballot": [
        {"name": "proposalId", "type": "uint256"},
        {"name": "support", "type": "uint8"},
        {"name": "voter", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ],
}
# TownPoll: Ballot(uint256 pollId,uint8 option,address voter) (no nonce: one vote per poll)
POLL_BALLOT_TYPES = {
    "EIP712Domain": BALLOT_TYPES["EIP712Domain"],
    "Ballot": [
        {"name": "pollId", "type": "uint256"},
        {"name": "option", "type": "uint8"},
        {"name": "voter", "type": "address"},
    ],
}
# TownPoll.PollState, in enum order
POLL_STATES = ("active", "ended", "canceled")
# Governor.ProposalState, in enum order
PROPOSAL_STATES = (
    "pending",
    "active",
    "canceled",
    "defeated",
    "succeeded",
    "queued",
    "expired",
    "executed",
)


def description_hash(description: str) -> str:
    """keccak256 of the proposal description, as 0x-hex (the `descriptionHash` argument)."""
    return "0x" + keccak(text=description).hex()


def hash_proposal(
    targets: Sequence[str], values: Sequence[int], calldatas: Sequence[str], description: str
) -> int:
    """The proposal id `Governor.hashProposal` returns for these actions and description."""
    encoded = abi_encode(
        ["address[]", "uint256[]", "bytes[]", "bytes32"],
        [
            [to_checksum_address(t) for t in targets],
            [int(v) for v in values],
            [bytes.fromhex(c.removeprefix("0x")) for c in calldatas],
            keccak(text=description),
        ],
    )
    return int.from_bytes(keccak(encoded), "big")


def ballot_typed_data(
    domain: Eip712Domain, proposal_id: int, support: int, voter: str, nonce: int
) -> dict[str, Any]:
    """The EIP-712 `full_message` a voter signs for `castVoteBySig`."""
    return {
        "types": BALLOT_TYPES,
        "primaryType": "Ballot",
        "domain": domain.as_dict(),
        "message": {
            "proposalId": int(proposal_id),
            "support": int(support),
            "voter": to_checksum_address(voter),
            "nonce": int(nonce),
        },
    }


def signature_hex(signed: Any) -> str:
    """0x-hex of a signature returned by a signer (bytes, HexBytes or an object with one)."""
    sig = getattr(signed, "signature", signed)
    text = sig.hex() if isinstance(sig, (bytes, bytearray)) else str(sig)
    return "0x" + text.removeprefix("0x")


def timelock_salt(governor: str, description: str) -> str:
    """The salt GovernorTimelockControl uses: bytes20(governor) XOR descriptionHash."""
    gov = int(to_checksum_address(governor), 16) << 96
    return "0x" + (gov ^ int.from_bytes(keccak(text=description), "big")).to_bytes(32, "big").hex()


def poll_ballot_typed_data(
    domain: Eip712Domain, poll_id: int, option: int, voter: str
) -> dict[str, Any]:
    """The EIP-712 `full_message` a voter signs for `TownPoll.castVoteBySig`."""
    return {
        "types": POLL_BALLOT_TYPES,
        "primaryType": "Ballot",
        "domain": domain.as_dict(),
        "message": {
            "pollId": int(poll_id),
            "option": int(option),
            "voter": to_checksum_address(voter),
        },
    }


def for_browser(typed: dict[str, Any]) -> dict[str, Any]:
    """`typed` for `eth_signTypedData_v4` in a browser: uint256 values as decimal strings
    (JavaScript numbers lose precision above 2**53; wallets accept decimal strings)."""
    out = {**typed, "message": dict(typed["message"])}
    for name in ("proposalId", "pollId", "nonce"):
        if name in out["message"]:
            out["message"][name] = str(int(out["message"][name]))
    return out


_SIGNATURE_HEX = frozenset("0123456789abcdefABCDEF")


def recover_typed_data_signer(typed: dict[str, Any], signature: Any) -> str | None:
    """The address that signed EIP-712 `typed` (EOA, 65-byte signature), or None when the
    signature is malformed or cannot be recovered. Only ECDSA recovery: no RPC."""
    if not isinstance(signature, str):
        return None
    body = signature.removeprefix("0x")
    if len(body) != 130 or not set(body) <= _SIGNATURE_HEX:
        return None
    try:
        return str(
            Account.recover_message(encode_typed_data(full_message=typed), signature="0x" + body)
        )
    except Exception:  # noqa: BLE001 - any malformed signature (bad v, s out of range) -> None
        return None


def relay_signer(outbox: Any, voter: str) -> Signer:
    """The relayer's own key as the signer of the forward request that carries a ballot signed
    in a browser wallet: `castVoteBySig` authenticates the voter by the ballot signature, so
    the relayer forwards it under its own name and pays the gas (gasless for the voter)."""
    keys = outbox.keys
    return keys.account(keys.relayer_for(voter))  # type: ignore[no-any-return]


_TRANSFER = "a9059cbb"  # transfer(address,uint256)


def decode_transfer(calldata: str) -> tuple[str, int] | None:
    """(recipient, amount) of an ERC-20 `transfer` call's calldata (0x-hex), or None when it is
    another call."""
    body = calldata.removeprefix("0x").lower()
    if len(body) != 8 + 128 or not body.startswith(_TRANSFER):
        return None
    to = to_checksum_address("0x" + body[8 + 24 : 8 + 64])
    return str(to), int(body[8 + 64 :], 16)


def timelock_operation_id(
    targets: Sequence[str], values: Sequence[int], calldatas: Sequence[str], salt: str
) -> str:
    """`TimelockController.hashOperationBatch(targets, values, payloads, 0, salt)` as 0x-hex: the
    id a governor's queued proposal has in the treasury (and that `Cancelled` names)."""
    encoded = abi_encode(
        ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32"],
        [
            [to_checksum_address(t) for t in targets],
            [int(v) for v in values],
            [bytes.fromhex(c.removeprefix("0x")) for c in calldatas],
            b"\x00" * 32,
            bytes.fromhex(salt.removeprefix("0x")),
        ],
    )
    return "0x" + keccak(encoded).hex()
