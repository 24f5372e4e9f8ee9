"""TownPoll: multi-option polls weighted by a chamber token's past votes, relayed signatures."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from tests.contracts.conftest import ADMIN, ALICE, BOB, CAROL, DAVE, ERIN, OUTSIDER, RELAYER

ACTIVE, ENDED, CANCELED = range(3)
LABELS = ["Crane", "Potato field", "Lake Toya", "Snow", "Milky Way"]


def create(
    chain: Any, poll: Any, token: Any, duration: int = 10, options: list[str] | None = None
) -> tuple:
    rcpt = chain.send(
        poll.functions.createPoll(token.address, options or LABELS, duration, "Label design 2026"),
        ADMIN,
    )
    return chain.events(poll, rcpt, "PollCreated")[0].args, rcpt


def ballot(
    chain: Any, poll: Any, key: str, pid: int, option: int, voter: str, chain_id: int
) -> bytes:
    domain = {
        "name": "TownPoll",
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": poll.address,
    }
    types = {
        "Ballot": [
            {"name": "pollId", "type": "uint256"},
            {"name": "option", "type": "uint8"},
            {"name": "voter", "type": "address"},
        ]
    }
    return chain.sign_typed(key, domain, types, {"pollId": pid, "option": option, "voter": voter})


def test_poll_lifecycle_and_result_from_events(
    w3: Web3, chain: Any, dao: Any, town_poll: Any
) -> None:
    a = chain.accounts
    ev, rcpt = create(chain, town_poll, dao.cards)
    pid = ev.pollId
    assert ev.options == LABELS and ev.token == dao.cards.address and ev.creator == a[ADMIN]
    assert ev.snapshot == rcpt.blockNumber - 1 and ev.deadline == rcpt.blockNumber + 10
    assert town_poll.functions.state(pid).call() == ACTIVE
    assert town_poll.functions.votingPower(pid, a[ALICE]).call() == 3
    votes = {ALICE: 2, BOB: 4, CAROL: 2}
    receipts = [
        chain.send(town_poll.functions.castVote(pid, opt), who) for who, opt in votes.items()
    ]
    assert town_poll.functions.results(pid).call() == [0, 0, 3 + 1, 0, 1]
    assert town_poll.functions.hasVoted(pid, a[ALICE]).call()
    assert town_poll.functions.votingPower(pid, a[ALICE]).call() == 0
    chain.mine(11)
    assert town_poll.functions.state(pid).call() == ENDED
    chain.expect_revert(town_poll.functions.castVote(pid, 0), "TownPollNotActive", DAVE)
    # the result is re-computable from events and the token's past votes alone
    tally = [0] * len(LABELS)
    for r in receipts:
        v = chain.events(town_poll, r, "VoteCast")[0].args
        assert v.weight == dao.cards.functions.getPastVotes(v.voter, ev.snapshot).call()
        tally[v.option] += v.weight
    assert tally == town_poll.functions.results(pid).call()
    info = town_poll.functions.pollInfo(pid).call()
    assert info == [dao.cards.address, ev.snapshot, ev.deadline, len(LABELS), 5]
    assert town_poll.functions.pollCount().call() >= pid


def test_poll_one_vote_per_account(w3: Web3, chain: Any, dao: Any, town_poll: Any) -> None:
    pid = create(chain, town_poll, dao.residents)[0].pollId
    chain.send(town_poll.functions.castVote(pid, 1), BOB)
    chain.expect_revert(town_poll.functions.castVote(pid, 1), "TownPollAlreadyVoted", BOB)
    chain.expect_revert(town_poll.functions.castVote(pid, 3), "TownPollAlreadyVoted", BOB)
    assert town_poll.functions.results(pid).call() == [0, 1, 0, 0, 0]


def test_poll_snapshot_blocks_late_buyers_and_resales(
    w3: Web3, chain: Any, dao: Any, town_poll: Any
) -> None:
    a = chain.accounts
    pid = create(chain, town_poll, dao.cards)[0].pollId
    # ALICE sells a card after creation: ERIN has no weight here, ALICE keeps her 3
    chain.send(dao.cards.functions.transferFrom(a[ALICE], a[ERIN], 2), ALICE)
    chain.expect_revert(town_poll.functions.castVote(pid, 0), "TownPollNoVotingPower", ERIN)
    rcpt = chain.send(town_poll.functions.castVote(pid, 0), ALICE)
    assert chain.events(town_poll, rcpt, "VoteCast")[0].args.weight == 3
    chain.expect_revert(town_poll.functions.castVote(pid, 0), "TownPollNoVotingPower", OUTSIDER)


def test_poll_vote_by_signature_relayed(
    w3: Web3, chain: Any, dao: Any, town_poll: Any, chain_id: int, gas_report: Any
) -> None:
    a = chain.accounts
    pid = create(chain, town_poll, dao.residents)[0].pollId
    sig = ballot(chain, town_poll, chain.key(CAROL), pid, 4, a[CAROL], chain_id)
    rcpt = chain.send(town_poll.functions.castVoteBySig(pid, 4, a[CAROL], sig), RELAYER)
    gas_report("poll_castVoteBySig", rcpt.gasUsed)
    v = chain.events(town_poll, rcpt, "VoteCast")[0].args
    assert (v.voter, v.option, v.weight) == (a[CAROL], 4, 1)
    # replay: one vote per account
    chain.expect_revert(
        town_poll.functions.castVoteBySig(pid, 4, a[CAROL], sig), "TownPollAlreadyVoted", RELAYER
    )
    # cross-chain, other option, other poll, other signer: all invalid
    bad = [
        (4, ballot(chain, town_poll, chain.key(DAVE), pid, 4, a[DAVE], chain_id + 1)),
        (3, ballot(chain, town_poll, chain.key(DAVE), pid, 4, a[DAVE], chain_id)),
        (4, ballot(chain, town_poll, chain.key(DAVE), pid + 1, 4, a[DAVE], chain_id)),
        (4, ballot(chain, town_poll, chain.key(BOB), pid, 4, a[DAVE], chain_id)),
    ]
    for option, s in bad:
        chain.expect_revert(
            town_poll.functions.castVoteBySig(pid, option, a[DAVE], s),
            "TownPollInvalidSignature",
            RELAYER,
        )


def test_poll_vote_through_forwarder(
    w3: Web3, chain: Any, dao: Any, town_poll: Any, relay: Any
) -> None:
    pid = create(chain, town_poll, dao.residents)[0].pollId
    rcpt = relay(chain.key(DAVE), town_poll.functions.castVote(pid, 2))
    assert chain.events(town_poll, rcpt, "VoteCast")[0].args.voter == chain.accounts[DAVE]


def test_poll_create_reverts_and_roles(w3: Web3, chain: Any, dao: Any, town_poll: Any) -> None:
    fn = town_poll.functions
    chain.expect_revert(
        fn.createPoll(dao.cards.address, ["only one"], 10, ""), "TownPollInvalidOptionCount"
    )
    chain.expect_revert(
        fn.createPoll(dao.cards.address, ["x"] * 33, 10, ""), "TownPollInvalidOptionCount"
    )
    chain.expect_revert(fn.createPoll(dao.cards.address, LABELS, 0, ""), "TownPollInvalidDuration")
    chain.expect_revert(fn.createPoll(chain.accounts[ERIN], LABELS, 10, ""), "TownPollInvalidToken")
    for who in (OUTSIDER, ALICE):
        chain.expect_revert(
            fn.createPoll(dao.cards.address, LABELS, 10, ""),
            "AccessControlUnauthorizedAccount",
            who,
        )
    pid = create(chain, town_poll, dao.cards)[0].pollId
    chain.expect_revert(fn.cancelPoll(pid), "AccessControlUnauthorizedAccount", OUTSIDER)
    chain.expect_revert(fn.castVote(pid, len(LABELS)), "TownPollInvalidOption", ALICE)
    for view in (
        fn.state(999),
        fn.results(999),
        fn.pollInfo(999),
        fn.votingPower(999, chain.accounts[ALICE]),
    ):
        chain.expect_revert(view, "TownPollNonexistentPoll")
    chain.expect_revert(fn.castVote(999, 0), "TownPollNonexistentPoll", ALICE)


def test_poll_cancel(w3: Web3, chain: Any, dao: Any, town_poll: Any) -> None:
    pid = create(chain, town_poll, dao.cards)[0].pollId
    rcpt = chain.send(town_poll.functions.cancelPoll(pid), ADMIN)
    assert chain.events(town_poll, rcpt, "PollCanceled")[0].args.pollId == pid
    assert town_poll.functions.state(pid).call() == CANCELED
    chain.expect_revert(town_poll.functions.castVote(pid, 0), "TownPollNotActive", ALICE)
    chain.expect_revert(town_poll.functions.cancelPoll(pid), "TownPollNotActive", ADMIN)
