"""Pure helpers for OpenZeppelin Governor proposals and gasless ballots (no RPC).

The DAO domain builds proposals and ballots with these, so it never imports web3/eth_abi itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

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
