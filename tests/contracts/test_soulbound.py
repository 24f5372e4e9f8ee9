"""ERC-5192 on the non-transferable tokens (issue 10 §5): ResidentPass and soulbound
FanCollections say they are locked (`locked`, `Locked`, interface 0xb45a3c0e) and refuse
approvals, so a marketplace cannot list a token that can never sell. A transferable collection
keeps its approvals and does not claim the interface."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak
from web3 import Web3

from tests.contracts.conftest import ADMIN, ALICE, BOB, ERIN, MINTER, OUTSIDER

ERC5192 = bytes.fromhex("b45a3c0e")
ERC721 = bytes.fromhex("80ac58cd")
LOCKED_TOPIC = keccak(text="Locked(uint256)")


def _locked_ids(rcpt: Any) -> list[int]:
    return [
        int.from_bytes(bytes(log["data"]), "big")
        for log in rcpt.logs
        if log["topics"][0] == LOCKED_TOPIC
    ]


def test_resident_pass_is_locked_from_issue(w3: Web3, chain: Any, dao: Any) -> None:
    # The interface id is the selector of locked(uint256), the interface's only function.
    assert keccak(text="locked(uint256)")[:4] == ERC5192
    rp = dao.residents
    erin = chain.accounts[ERIN]
    rcpt = chain.send(rp.functions.issue(erin, keccak(text="person-erin")), ADMIN)
    (issued,) = chain.events(rp, rcpt, "PassIssued")
    tid = issued.args.tokenId
    assert _locked_ids(rcpt) == [tid]
    assert [e.args.tokenId for e in chain.events(rp, rcpt, "Locked")] == [tid]
    assert rp.functions.locked(tid).call() is True
    assert rp.functions.supportsInterface(ERC5192).call()
    assert rp.functions.supportsInterface(ERC721).call()
    chain.expect_revert(rp.functions.locked(tid + 100), "ERC721NonexistentToken")


def test_resident_pass_refuses_a_marketplace_approval(w3: Web3, chain: Any, dao: Any) -> None:
    rp = dao.residents
    alice, market = chain.accounts[ALICE], chain.accounts[OUTSIDER]
    tid = rp.functions.passOf(keccak(text="person-0")).call()
    assert rp.functions.ownerOf(tid).call() == alice
    # What a marketplace asks a seller to sign before it lists a token.
    chain.expect_revert(rp.functions.approve(market, tid), "ResidentPassApprovalDisabled", ALICE)
    chain.expect_revert(
        rp.functions.setApprovalForAll(market, True), "ResidentPassApprovalDisabled", ALICE
    )
    assert rp.functions.getApproved(tid).call() == "0x" + "00" * 20
    assert not rp.functions.isApprovedForAll(alice, market).call()
    # Revoking still works (the registrar burns; no approval needed).
    chain.send(rp.functions.revoke(tid), ADMIN)
    chain.expect_revert(rp.functions.locked(tid), "ERC721NonexistentToken")


def test_soulbound_collection_is_locked_and_refuses_approvals(
    w3: Web3, chain: Any, soulbound_collection: Any
) -> None:
    c = soulbound_collection
    alice, market = chain.accounts[ALICE], chain.accounts[OUTSIDER]
    first = c.functions.saleMint(alice, 2).call({"from": chain.accounts[MINTER]})
    rcpt = chain.send(c.functions.saleMint(alice, 2), MINTER)
    assert _locked_ids(rcpt) == [first, first + 1]
    rcpt = chain.send(c.functions.mint(alice), MINTER)
    assert _locked_ids(rcpt) == [first + 2]
    assert all(c.functions.locked(i).call() for i in (first, first + 1, first + 2))
    assert c.functions.supportsInterface(ERC5192).call()
    chain.expect_revert(c.functions.approve(market, first), "FanCollectionApprovalDisabled", ALICE)
    chain.expect_revert(
        c.functions.setApprovalForAll(market, True), "FanCollectionApprovalDisabled", ALICE
    )
    chain.expect_revert(c.functions.locked(first + 3), "ERC721NonexistentToken")
    # The holder may still burn a locked token.
    chain.send(c.functions.burn(first), ALICE)
    chain.expect_revert(c.functions.locked(first), "ERC721NonexistentToken")


def test_soulbound_voting_collection_emits_locked_once(
    w3: Web3, chain: Any, make_collection: Any
) -> None:
    c = make_collection(soulbound=True, votes=True, name="Bound Votes", symbol="BV")
    rcpt = chain.send(c.functions.saleMint(chain.accounts[BOB], 3), MINTER)
    assert _locked_ids(rcpt) == [1, 2, 3]
    assert c.functions.locked(2).call()


def test_transferable_collection_is_not_locked_and_keeps_approvals(
    w3: Web3, chain: Any, plain_collection: Any
) -> None:
    c = plain_collection
    alice, market = chain.accounts[ALICE], chain.accounts[OUTSIDER]
    first = c.functions.saleMint(alice, 1).call({"from": chain.accounts[MINTER]})
    rcpt = chain.send(c.functions.saleMint(alice, 1), MINTER)
    assert _locked_ids(rcpt) == []
    assert c.functions.locked(first).call() is False
    assert not c.functions.supportsInterface(ERC5192).call()
    chain.send(c.functions.approve(market, first), ALICE)
    assert c.functions.getApproved(first).call() == market
    chain.send(c.functions.setApprovalForAll(market, True), ALICE)
    assert c.functions.isApprovedForAll(alice, market).call()
