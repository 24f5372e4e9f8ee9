"""Issue 10 §1 replayed: a tourist with one ambassador card tries to empty the town treasury.

On 14f85a7 this went through on the demo town as deployed: threshold 0, quorum 4 % of a card
supply below 25 (i.e. 0), 300 blocks to vote and 60 s in the timelock, and nobody else could
object. The test replays the same steps on the town as `make run` deploys it today and shows
where they stop: the quorum floor defeats a proposal one holder carries alone, and a proposal
carried by a holder who bought enough cards is cancelled by the town guardian (a Safe, 2 of 3)
within the treasury delay, so nothing leaves the treasury.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from backend.chain import safe
from backend.chain.dao_settings import DaoSpec, chamber_settings
from backend.chain.deploy import DEV_GUARDIAN_KEYS
from backend.chain.governance import timelock_salt
from backend.chain.registry import Deployments, artifact
from tests.chain_admin import as_timelock, role_key

PENDING, ACTIVE, CANCELED, DEFEATED, SUCCEEDED, QUEUED, EXPIRED, EXECUTED = range(8)
FOR = 1
TREASURY_YEN = 1_000_000
T = "towns.sarabetsu."


class Town:
    def __init__(self, w3: Web3, deployed: Deployments, admin_key: str, chain: Any) -> None:
        self.w3, self.chain, self.deployed = w3, chain, deployed
        self.admin = Account.from_key(admin_key)

        def c(key: str, name: str) -> Any:
            return w3.eth.contract(address=deployed.address(key), abi=artifact(name).abi)

        self.cards = c(T + "collections.ambassador", "FanCollection")
        self.gov = c(T + "CardChamber", "TownGovernor")
        self.treasury = c(T + "TownTreasury", "TownTreasury")
        self.guardian = c(T + "Guardian", "SafeL2")
        self.yen = c("TestYenStablecoin", "TestYenStablecoin")

    def as_admin(self, fn: Any) -> Any:
        return self.chain.send_raw(fn, self.admin.key.hex())

    def sell_cards(self, to: str, n: int) -> None:
        """What the shop's primary sale does for a paying tourist: mint cards to them."""
        role = self.cards.functions.MINTER_ROLE().call()
        if not self.cards.functions.hasRole(role, self.admin.address).call():
            # The shop's sale contract is the minter; a vote (the timelock) adds this test key.
            as_timelock(
                self.w3, self.deployed, self.cards.functions.grantRole(role, self.admin.address)
            )
        for _ in range(n):
            self.as_admin(self.cards.functions.mint(to))
        self.chain.mine(1)


@pytest.fixture
def town(w3: Web3, deployed: Deployments, anvil: Any, chain: Any) -> Town:
    t = Town(w3, deployed, anvil.keys[0], chain)
    t.chain.send_raw(t.yen.functions.mint(t.treasury.address, TREASURY_YEN), role_key("faucet"))
    return t


@pytest.fixture
def tourist(w3: Web3, chain: Any) -> Any:
    """A new tourist who exported their wallet key from the platform."""
    acct = Account.create()
    tx = w3.eth.send_transaction({"from": chain.accounts[0], "to": acct.address, "value": 10**18})
    w3.eth.wait_for_transaction_receipt(tx)
    return acct


def drain_proposal(town: Town, to: str, tag: str) -> tuple[list, list, list, str]:
    data = town.yen.functions.transfer(to, TREASURY_YEN)._encode_transaction_data()
    return [town.yen.address], [0], [bytes.fromhex(data[2:])], f"pay the whole treasury to me {tag}"


def propose_and_vote_alone(town: Town, key: str, proposal: tuple) -> int:
    gov, chain = town.gov, town.chain
    rcpt = chain.send_raw(gov.functions.propose(*proposal), key)
    pid = int(chain.events(gov, rcpt, "ProposalCreated")[0].args.proposalId)
    chain.mine(int(gov.functions.votingDelay().call()) + 1)
    chain.send_raw(gov.functions.castVote(pid, FOR), key)
    chain.mine(int(gov.functions.votingPeriod().call()) + 1)
    return pid


def test_one_card_alone_is_defeated_by_the_quorum_floor(town: Town, tourist: Any) -> None:
    town.sell_cards(tourist.address, 1)
    assert town.cards.functions.getVotes(tourist.address).call() == 1
    proposal = drain_proposal(town, tourist.address, "(one card)")
    pid = propose_and_vote_alone(town, tourist.key.hex(), proposal)
    snapshot = town.gov.functions.proposalSnapshot(pid).call()
    # 4 % of a few cards is 0 votes; the floor makes it 2, which one card does not reach.
    assert town.gov.functions.quorum(snapshot).call() == town.gov.functions.quorumFloor().call()
    assert town.gov.functions.quorumFloor().call() >= 2
    assert town.gov.functions.proposalVotes(pid).call() == [0, 1, 0]
    assert town.gov.functions.state(pid).call() == DEFEATED
    targets, values, calldatas, desc = proposal
    town.chain.expect_revert(
        town.gov.functions.queue(targets, values, calldatas, Web3.keccak(text=desc)),
        "GovernorUnexpectedProposalState",
    )
    assert town.yen.functions.balanceOf(town.treasury.address).call() == TREASURY_YEN


def test_a_bought_majority_is_cancelled_by_the_guardian_within_the_delay(
    town: Town, tourist: Any
) -> None:
    gov, treasury, chain = town.gov, town.treasury, town.chain
    # The attacker buys enough cards to reach the floor and carries the vote alone.
    town.sell_cards(tourist.address, int(gov.functions.quorumFloor().call()))
    proposal = drain_proposal(town, tourist.address, "(bought cards)")
    targets, values, calldatas, desc = proposal
    pid = propose_and_vote_alone(town, tourist.key.hex(), proposal)
    assert gov.functions.state(pid).call() == SUCCEEDED
    chain.send_raw(
        gov.functions.queue(targets, values, calldatas, Web3.keccak(text=desc)), tourist.key.hex()
    )
    assert gov.functions.state(pid).call() == QUEUED
    op = treasury.functions.hashOperationBatch(
        targets, values, calldatas, b"\x00" * 32, timelock_salt(gov.address, desc)
    ).call()
    assert treasury.functions.isOperationPending(op).call()

    cancel = safe.SafeTx(
        to=treasury.address,
        data=bytes.fromhex(treasury.functions.cancel(op)._encode_transaction_data()[2:]),
    )
    guardian = town.guardian

    def send(fn: Any) -> Any:  # any account may carry the owners' signatures
        return chain.send_raw(fn, tourist.key.hex())

    # One guardian owner alone cannot act: the Safe needs 2 of its 3 owners.
    assert guardian.functions.getThreshold().call() == 2
    one = safe.sign(safe.tx_hash(guardian, cancel), DEV_GUARDIAN_KEYS[:1])
    chain.expect_revert(
        guardian.functions.execTransaction(
            *cancel.args(), safe.ZERO_ADDRESS, safe.ZERO_ADDRESS, one
        ),
        "Error",
    )
    # The attacker cannot cancel either (only the guardian and the chambers hold CANCELLER_ROLE).
    chain.expect_revert(
        treasury.functions.cancel(op), "AccessControlUnauthorizedAccount", tourist.address
    )
    # Two owners sign within the delay: the payout is cancelled.
    assert chain.now() < treasury.functions.getTimestamp(op).call()
    rcpt = safe.exec_transaction(guardian, send, cancel, DEV_GUARDIAN_KEYS[1:])
    assert chain.events(treasury, rcpt, "Cancelled")[0].args.id == op
    assert gov.functions.state(pid).call() == CANCELED

    chain.increase_time(int(treasury.functions.getMinDelay().call()) + 1)
    chain.expect_revert(
        gov.functions.execute(targets, values, calldatas, Web3.keccak(text=desc)),
        "GovernorUnexpectedProposalState",
        tourist.address,
    )
    chain.expect_revert(
        treasury.functions.executeBatch(
            targets, values, calldatas, b"\x00" * 32, timelock_salt(gov.address, desc)
        ),
        "TimelockUnexpectedOperationState",
        tourist.address,
    )
    assert town.yen.functions.balanceOf(town.treasury.address).call() == TREASURY_YEN
    assert town.yen.functions.balanceOf(tourist.address).call() == 0


def test_the_guardian_may_cancel_and_nothing_else(town: Town) -> None:
    treasury, g = town.treasury, town.guardian.address
    role = treasury.functions
    assert role.hasRole(role.CANCELLER_ROLE().call(), g).call()
    for name in ("PROPOSER_ROLE", "DEFAULT_ADMIN_ROLE"):
        assert not role.hasRole(getattr(role, name)().call(), g).call()
    owners = town.guardian.functions.getOwners().call()
    assert sorted(owners) == sorted(Account.from_key(k).address for k in DEV_GUARDIAN_KEYS)


def test_real_chain_defaults_need_more_than_a_handful_of_cards() -> None:
    """The defaults a real town gets: a week to vote, two days in the treasury, a quorum floor
    of several votes, and a card to propose (12 s blocks on chain 1)."""
    s = chamber_settings(DaoSpec(guardian=_owners()), 1, "0x" + "00" * 20)
    assert s.voting_period == 7 * 86_400 // 12
    assert s.proposal_threshold >= 1 and s.quorum_floor >= 3
    assert DaoSpec().timelock_delay == 2 * 86_400


def _owners() -> Any:
    from backend.chain.dao_settings import GuardianSpec

    return GuardianSpec(owners=tuple(Account.create().address for _ in range(3)), threshold=2)
