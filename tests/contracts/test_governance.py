"""Two chambers (1 card = 1 vote; 1 resident = 1 vote) on one TownTreasury timelock."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak
from web3 import Web3

from tests.contracts.conftest import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    OUTSIDER,
    PROPOSAL_THRESHOLD,
    QUORUM_FLOOR,
    RELAYER,
    TIMELOCK_DELAY,
    VOTING_DELAY,
    VOTING_PERIOD,
)

PENDING, ACTIVE, CANCELED, DEFEATED, SUCCEEDED, QUEUED, EXPIRED, EXECUTED = range(8)
AGAINST, FOR, ABSTAIN = range(3)
ZERO = "0x" + "00" * 20


def payout_proposal(
    dao: Any, to: str, amount: int, eth: int = 0, desc: str = "Pay the label designer"
) -> tuple:
    targets = [dao.points.address]
    values = [0]
    calldatas = [
        bytes.fromhex(dao.points.functions.transfer(to, amount)._encode_transaction_data()[2:])
    ]
    if eth:
        targets.append(to)
        values.append(eth)
        calldatas.append(b"")
    return targets, values, calldatas, desc


def propose(chain: Any, gov: Any, proposal: tuple, proposer: int = BOB) -> int:
    targets, values, calldatas, desc = proposal
    rcpt = chain.send(gov.functions.propose(targets, values, calldatas, desc), proposer)
    return chain.events(gov, rcpt, "ProposalCreated")[0].args.proposalId


def desc_hash(proposal: tuple) -> bytes:
    return keccak(text=proposal[3])


def to_active(chain: Any) -> None:
    chain.mine(VOTING_DELAY + 1)


def to_end(chain: Any) -> None:
    chain.mine(VOTING_PERIOD + 1)


def ballot(
    chain: Any, gov: Any, key: str, pid: int, support: int, voter: str, nonce: int, chain_id: int
) -> bytes:
    domain = {
        "name": gov.functions.name().call(),
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": gov.address,
    }
    types = {
        "Ballot": [
            {"name": "proposalId", "type": "uint256"},
            {"name": "support", "type": "uint8"},
            {"name": "voter", "type": "address"},
            {"name": "nonce", "type": "uint256"},
        ]
    }
    msg = {"proposalId": pid, "support": support, "voter": voter, "nonce": nonce}
    return chain.sign_typed(key, domain, types, msg)


# ---------------------------------------------------------------------------- setup


def test_chambers_share_one_treasury(w3: Web3, chain: Any, dao: Any, forwarder: Any) -> None:
    for gov, token in ((dao.card_chamber, dao.cards), (dao.resident_chamber, dao.residents)):
        assert gov.functions.token().call() == token.address
        assert gov.functions.timelock().call() == dao.treasury.address
        assert gov.functions.votingDelay().call() == VOTING_DELAY
        assert gov.functions.votingPeriod().call() == VOTING_PERIOD
        assert gov.functions.proposalThreshold().call() == PROPOSAL_THRESHOLD
        assert gov.functions.quorumFloor().call() == QUORUM_FLOOR
        assert gov.functions.platformProposer().call() == ZERO
        assert gov.functions.CLOCK_MODE().call() == "mode=blocknumber&from=default"
        assert gov.functions.trustedForwarder().call() == forwarder.address
        assert dao.treasury.functions.hasRole(chain.role("PROPOSER_ROLE"), gov.address).call()
    blk = chain.block() - 1
    assert dao.card_chamber.functions.quorum(blk).call() == 2  # 50% of 5 cards
    assert dao.resident_chamber.functions.quorum(blk).call() == 2  # 50% of 4 residents
    assert dao.points.functions.balanceOf(dao.treasury.address).call() == 1_000_000
    assert w3.eth.get_balance(dao.treasury.address) == 10**18
    # nobody administers the timelock any more: only proposals move money
    assert not dao.treasury.functions.hasRole(
        chain.role("DEFAULT_ADMIN_ROLE"), chain.accounts[ADMIN]
    ).call()


def test_card_voting_power_is_auto_delegated(w3: Web3, chain: Any, dao: Any) -> None:
    a = chain.accounts
    assert [dao.cards.functions.getVotes(a[i]).call() for i in (ALICE, BOB, CAROL)] == [3, 1, 1]
    assert dao.cards.functions.delegates(a[ALICE]).call() == a[ALICE]
    assert [dao.residents.functions.getVotes(a[i]).call() for i in (ALICE, BOB, CAROL, DAVE)] == [
        1,
        1,
        1,
        1,
    ]


def test_treasury_rejects_direct_scheduling(w3: Web3, chain: Any, dao: Any) -> None:
    chain.expect_revert(
        dao.treasury.functions.schedule(
            dao.points.address, 0, b"", b"\x00" * 32, b"\x00" * 32, TIMELOCK_DELAY
        ),
        "AccessControlUnauthorizedAccount",
        OUTSIDER,
    )
    chain.expect_revert(
        dao.treasury.functions.updateDelay(1),
        "TimelockUnauthorizedCaller",
        ADMIN,
    )


def test_settings_only_through_governance(w3: Web3, chain: Any, dao: Any) -> None:
    for fn in (
        dao.card_chamber.functions.setVotingPeriod(5),
        dao.card_chamber.functions.setVotingDelay(5),
        dao.card_chamber.functions.setProposalThreshold(5),
        dao.card_chamber.functions.updateQuorumNumerator(10),
        dao.card_chamber.functions.updateTimelock(dao.treasury.address),
    ):
        chain.expect_revert(fn, "GovernorOnlyExecutor", ADMIN)


# ---------------------------------------------------------------------------- lifecycle


def test_lifecycle_defeated_when_quorum_not_reached(w3: Web3, chain: Any, dao: Any) -> None:
    gov = dao.card_chamber
    pid = propose(chain, gov, payout_proposal(dao, chain.accounts[ERIN], 500))
    assert gov.functions.state(pid).call() == PENDING
    chain.expect_revert(gov.functions.castVote(pid, FOR), "GovernorUnexpectedProposalState", BOB)
    to_active(chain)
    assert gov.functions.state(pid).call() == ACTIVE
    chain.send(gov.functions.castVote(pid, FOR), BOB)  # 1 vote, quorum is 2
    assert gov.functions.proposalVotes(pid).call() == [0, 1, 0]
    to_end(chain)
    assert gov.functions.state(pid).call() == DEFEATED
    chain.expect_revert(
        gov.functions.queue(
            *payout_proposal(dao, chain.accounts[ERIN], 500)[:3],
            desc_hash(payout_proposal(dao, chain.accounts[ERIN], 500)),
        ),
        "GovernorUnexpectedProposalState",
    )


def test_lifecycle_defeated_when_against_wins(w3: Web3, chain: Any, dao: Any) -> None:
    gov = dao.card_chamber
    pid = propose(chain, gov, payout_proposal(dao, chain.accounts[ERIN], 500))
    to_active(chain)
    chain.send(gov.functions.castVote(pid, AGAINST), ALICE)
    chain.send(gov.functions.castVote(pid, FOR), BOB)
    to_end(chain)
    assert gov.functions.state(pid).call() == DEFEATED


def test_lifecycle_succeeded_queued_executed_pays_out(w3: Web3, chain: Any, dao: Any) -> None:
    gov = dao.card_chamber
    erin = chain.accounts[ERIN]
    proposal = payout_proposal(dao, erin, 25_000, eth=10**17)
    targets, values, calldatas, _ = proposal
    eth_before = w3.eth.get_balance(erin)
    pid = propose(chain, gov, proposal)
    to_active(chain)
    rcpt = chain.send(gov.functions.castVoteWithReason(pid, FOR, "good design"), ALICE)
    assert chain.events(gov, rcpt, "VoteCast")[0].args.weight == 3
    chain.send(gov.functions.castVote(pid, ABSTAIN), CAROL)
    to_end(chain)
    assert gov.functions.state(pid).call() == SUCCEEDED
    assert gov.functions.proposalNeedsQueuing(pid).call()
    chain.send(gov.functions.queue(targets, values, calldatas, desc_hash(proposal)), OUTSIDER)
    assert gov.functions.state(pid).call() == QUEUED
    chain.expect_revert(
        gov.functions.execute(targets, values, calldatas, desc_hash(proposal)),
        "TimelockUnexpectedOperationState",
    )
    chain.increase_time(TIMELOCK_DELAY + 1)
    rcpt = chain.send(
        gov.functions.execute(targets, values, calldatas, desc_hash(proposal)), OUTSIDER
    )
    assert chain.events(gov, rcpt, "ProposalExecuted")[0].args.proposalId == pid
    assert gov.functions.state(pid).call() == EXECUTED
    assert dao.points.functions.balanceOf(erin).call() == 25_000
    assert dao.points.functions.balanceOf(dao.treasury.address).call() == 1_000_000 - 25_000
    assert w3.eth.get_balance(erin) == eth_before + 10**17
    chain.expect_revert(
        gov.functions.execute(targets, values, calldatas, desc_hash(proposal)),
        "GovernorUnexpectedProposalState",
    )


def test_resident_chamber_one_person_one_vote_pays_out(w3: Web3, chain: Any, dao: Any) -> None:
    gov = dao.resident_chamber
    proposal = payout_proposal(
        dao, chain.accounts[ERIN], 7_000, desc="Resident chamber: fund the summer festival"
    )
    targets, values, calldatas, _ = proposal
    pid = propose(chain, gov, proposal, proposer=DAVE)
    to_active(chain)
    for voter in (ALICE, DAVE):  # ALICE has 3 cards but one resident vote
        rcpt = chain.send(gov.functions.castVote(pid, FOR), voter)
        assert chain.events(gov, rcpt, "VoteCast")[0].args.weight == 1
    chain.expect_revert(gov.functions.castVote(pid, FOR), "GovernorAlreadyCastVote", ALICE)
    to_end(chain)
    assert gov.functions.proposalVotes(pid).call() == [0, 2, 0]
    assert gov.functions.state(pid).call() == SUCCEEDED
    chain.send(gov.functions.queue(targets, values, calldatas, desc_hash(proposal)), OUTSIDER)
    chain.increase_time(TIMELOCK_DELAY + 1)
    chain.send(gov.functions.execute(targets, values, calldatas, desc_hash(proposal)), OUTSIDER)
    assert dao.points.functions.balanceOf(chain.accounts[ERIN]).call() == 7_000


def test_votes_use_the_snapshot_not_the_current_holder(w3: Web3, chain: Any, dao: Any) -> None:
    gov = dao.card_chamber
    a = chain.accounts
    pid = propose(chain, gov, payout_proposal(dao, a[ERIN], 1))
    to_active(chain)
    # ALICE sells a card after the snapshot: the buyer gets no weight in this vote, ALICE keeps 3
    token_id = 1
    chain.send(dao.cards.functions.transferFrom(a[ALICE], a[ERIN], token_id), ALICE)
    assert dao.cards.functions.getVotes(a[ERIN]).call() == 1
    assert gov.functions.getVotes(a[ERIN], gov.functions.proposalSnapshot(pid).call()).call() == 0
    chain.send(gov.functions.castVote(pid, FOR), ERIN)  # counted with weight 0
    rcpt = chain.send(gov.functions.castVote(pid, FOR), ALICE)
    assert chain.events(gov, rcpt, "VoteCast")[0].args.weight == 3


def test_cancel_by_proposer_only_while_pending(w3: Web3, chain: Any, dao: Any) -> None:
    gov = dao.card_chamber
    proposal = payout_proposal(dao, chain.accounts[ERIN], 9, desc="to be canceled")
    targets, values, calldatas, _ = proposal
    pid = propose(chain, gov, proposal, proposer=BOB)
    chain.expect_revert(
        gov.functions.cancel(targets, values, calldatas, desc_hash(proposal)),
        "GovernorUnableToCancel",
        ALICE,
    )
    chain.send(gov.functions.cancel(targets, values, calldatas, desc_hash(proposal)), BOB)
    assert gov.functions.state(pid).call() == CANCELED


def test_relayed_propose_and_vote_through_forwarder(
    w3: Web3, chain: Any, dao: Any, relay: Any
) -> None:
    gov = dao.card_chamber
    targets, values, calldatas, desc = payout_proposal(
        dao, chain.accounts[ERIN], 3, desc="relayed proposal"
    )
    rcpt = relay(chain.key(CAROL), gov.functions.propose(targets, values, calldatas, desc))
    ev = chain.events(gov, rcpt, "ProposalCreated")[0].args
    assert ev.proposer == chain.accounts[CAROL]
    to_active(chain)
    rcpt = relay(chain.key(ALICE), gov.functions.castVote(ev.proposalId, FOR))
    assert chain.events(gov, rcpt, "VoteCast")[0].args.voter == chain.accounts[ALICE]
    assert gov.functions.hasVoted(ev.proposalId, chain.accounts[ALICE]).call()


# ---------------------------------------------------------------------------- castVoteBySig


def test_cast_vote_by_sig_relayed(
    w3: Web3, chain: Any, dao: Any, chain_id: int, gas_report: Any
) -> None:
    gov = dao.card_chamber
    alice = chain.accounts[ALICE]
    pid = propose(chain, gov, payout_proposal(dao, chain.accounts[ERIN], 11))
    to_active(chain)
    nonce = gov.functions.nonces(alice).call()
    sig = ballot(chain, gov, chain.key(ALICE), pid, FOR, alice, nonce, chain_id)
    rcpt = chain.send(gov.functions.castVoteBySig(pid, FOR, alice, sig), RELAYER)
    gas_report("castVoteBySig_card_chamber", rcpt.gasUsed)
    ev = chain.events(gov, rcpt, "VoteCast")[0].args
    assert (ev.voter, ev.support, ev.weight) == (alice, FOR, 3)
    assert rcpt["from"] == chain.accounts[RELAYER]
    assert gov.functions.nonces(alice).call() == nonce + 1
    # replayed: the nonce is used up, the signature no longer matches
    chain.expect_revert(
        gov.functions.castVoteBySig(pid, FOR, alice, sig), "GovernorInvalidSignature", RELAYER
    )


def test_cast_vote_by_sig_rejects_cross_chain_and_forged(
    w3: Web3, chain: Any, dao: Any, chain_id: int
) -> None:
    gov = dao.card_chamber
    alice, bob = chain.accounts[ALICE], chain.accounts[BOB]
    pid = propose(chain, gov, payout_proposal(dao, chain.accounts[ERIN], 12))
    to_active(chain)
    nonce = gov.functions.nonces(alice).call()
    other_chain = ballot(chain, gov, chain.key(ALICE), pid, FOR, alice, nonce, chain_id + 1)
    chain.expect_revert(
        gov.functions.castVoteBySig(pid, FOR, alice, other_chain),
        "GovernorInvalidSignature",
        RELAYER,
    )
    bobs = ballot(
        chain, gov, chain.key(BOB), pid, FOR, alice, nonce, chain_id
    )  # BOB signs as ALICE
    chain.expect_revert(
        gov.functions.castVoteBySig(pid, FOR, alice, bobs), "GovernorInvalidSignature", RELAYER
    )
    good = ballot(chain, gov, chain.key(ALICE), pid, FOR, alice, nonce, chain_id)
    chain.expect_revert(
        gov.functions.castVoteBySig(pid, AGAINST, alice, good), "GovernorInvalidSignature", RELAYER
    )
    other_gov = ballot(
        chain, dao.resident_chamber, chain.key(ALICE), pid, FOR, alice, nonce, chain_id
    )
    chain.expect_revert(
        gov.functions.castVoteBySig(pid, FOR, alice, other_gov), "GovernorInvalidSignature", RELAYER
    )
    chain.expect_revert(gov.functions.castVote(pid, 3), "GovernorInvalidVoteType", bob)


# ---------------------------------------------------------------------------- ResidentPass


def test_resident_pass_issue(w3: Web3, chain: Any, dao: Any) -> None:
    rp = dao.residents
    erin = chain.accounts[ERIN]
    person = keccak(text="person-erin")
    rcpt = chain.send(rp.functions.issue(erin, person), ADMIN)
    ev = chain.events(rp, rcpt, "PassIssued")[0].args
    assert (ev.holder, ev.personId) == (erin, person)
    assert rp.functions.passOf(person).call() == ev.tokenId
    assert rp.functions.delegates(erin).call() == erin
    assert rp.functions.getVotes(erin).call() == 1
    assert (
        rp.functions.tokenURI(ev.tokenId).call()
        == f"https://furusato.example/meta/res/{ev.tokenId}"
    )
    assert rp.functions.trustedForwarder().call() != ZERO


def test_resident_pass_issue_reverts(w3: Web3, chain: Any, dao: Any) -> None:
    rp = dao.residents
    a = chain.accounts
    chain.expect_revert(
        rp.functions.issue(a[ALICE], keccak(text="new")), "ResidentPassAlreadyHolder"
    )
    chain.expect_revert(
        rp.functions.issue(a[ERIN], keccak(text="person-0")), "ResidentPassPersonAlreadyRegistered"
    )
    chain.expect_revert(rp.functions.issue(a[ERIN], b"\x00" * 32), "ResidentPassInvalidPerson")
    chain.expect_revert(rp.functions.issue(ZERO, keccak(text="z")), "ERC721InvalidOwner")
    for who in (OUTSIDER, ALICE):
        chain.expect_revert(
            rp.functions.issue(a[ERIN], keccak(text="x")), "AccessControlUnauthorizedAccount", who
        )
        chain.expect_revert(rp.functions.revoke(1), "AccessControlUnauthorizedAccount", who)
        chain.expect_revert(rp.functions.setBaseURI("x"), "AccessControlUnauthorizedAccount", who)


def test_resident_pass_is_soulbound_and_not_delegable(w3: Web3, chain: Any, dao: Any) -> None:
    rp = dao.residents
    a = chain.accounts
    tid = rp.functions.passOf(keccak(text="person-0")).call()
    assert rp.functions.ownerOf(tid).call() == a[ALICE]
    chain.expect_revert(
        rp.functions.transferFrom(a[ALICE], a[ERIN], tid), "ResidentPassSoulbound", ALICE
    )
    chain.expect_revert(
        rp.functions.safeTransferFrom(a[ALICE], a[ERIN], tid), "ResidentPassSoulbound", ALICE
    )
    chain.expect_revert(rp.functions.delegate(a[BOB]), "ResidentPassDelegationDisabled", ALICE)
    chain.expect_revert(
        rp.functions.delegateBySig(a[BOB], 0, 2**40, 27, b"\x00" * 32, b"\x00" * 32),
        "ResidentPassDelegationDisabled",
        ALICE,
    )


def test_resident_pass_revoke_and_reissue(w3: Web3, chain: Any, dao: Any) -> None:
    rp = dao.residents
    a = chain.accounts
    person = keccak(text="person-3")
    tid = rp.functions.passOf(person).call()
    rcpt = chain.send(rp.functions.revoke(tid), ADMIN)
    ev = chain.events(rp, rcpt, "PassRevoked")[0].args
    assert (ev.holder, ev.tokenId, ev.personId) == (a[DAVE], tid, person)
    assert rp.functions.getVotes(a[DAVE]).call() == 0
    assert rp.functions.passOf(person).call() == 0
    chain.expect_revert(rp.functions.revoke(tid), "ERC721NonexistentToken")
    # the person changed wallet: a new pass on the new address
    chain.send(rp.functions.issue(a[ERIN], person), ADMIN)
    assert rp.functions.getVotes(a[ERIN]).call() == 1
    chain.send(rp.functions.setBaseURI("ipfs://res/"), ADMIN)
    assert (
        rp.functions.tokenURI(rp.functions.passOf(person).call()).call().startswith("ipfs://res/")
    )
