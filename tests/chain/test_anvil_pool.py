"""The test helper that mines, or sends again, what anvil's automine missed (tests/anvil_pool.py).

anvil's race could not be forced on demand (it was seen in full runs; 300 rounds of batched and
out-of-order sends on a loaded machine did not repeat it). The decisions are tested against a
scripted node. On the session's anvil: what the helper reads of the pool (ready vs queued
transactions), and the queued-for-nothing state, which anvil_setNonce makes on demand (the
nonce before a queued transaction used up without the pool being told), undone for real."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from backend.chain.errors import RpcError, RpcUnavailable
from backend.chain.rpc import JsonRpc
from tests.anvil_pool import MinesMissed, StuckPool, node_call
from tests.chain._reorg_helpers import no_automine, rpc

SENDER = "0x00000000000000000000000000000000000000aa"


class ScriptedNode:
    """A pool with anvil's two misses, for one sender: ready transactions (`pending`) that only
    evm_mine takes, and queued ones (`queued`, by nonce) that no block takes until they are
    sent again; a transaction sent again is ready, and automine mines it."""

    def __init__(self, automine: bool = True) -> None:
        self.automine = automine
        self.pending: list[str] = []
        self.queued: dict[int, str] = {}
        self.account_nonce = 0  # the sender's next nonce on chain
        self.blocks: list[list[str]] = []
        self.refused: set[str] = set()  # hashes whose raw send the node answers with an error
        self.on_raw_read: Callable[[], None] = lambda: None  # runs as the helper reads bytes

    def __call__(self, method: str, params: list[Any]) -> Any:
        if method == "anvil_getAutomine":
            return self.automine
        if method == "txpool_content":
            ready = {str(n): {"hash": h} for n, h in enumerate(self.pending)}
            queued = {str(n): {"hash": h} for n, h in self.queued.items()}
            return {
                "pending": {SENDER: ready} if ready else {},
                "queued": {SENDER: queued} if queued else {},
            }
        if method == "eth_getTransactionCount":
            assert params == [SENDER, "latest"]
            return hex(self.account_nonce)
        if method == "eth_getRawTransactionByHash":
            self.on_raw_read()
            return f"raw-{params[0]}"
        if method == "anvil_removePoolTransactions":
            assert params == [SENDER]
            self.pending, self.queued = [], {}
            return None
        if method == "eth_sendRawTransaction":
            tx_hash = params[0].removeprefix("raw-")
            if tx_hash in self.refused:
                raise RpcError(-32000, "already known", method=method)
            self.blocks.append([tx_hash])
            self.account_nonce += 1
            return tx_hash
        if method == "evm_mine":
            self.blocks.append(self.pending)
            self.pending = []
            return "0x0"
        raise AssertionError(f"unexpected call {method}")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The helper's monotonic clock, moved forward by the test."""
    now = [100.0]
    monkeypatch.setattr("tests.anvil_pool.time.monotonic", lambda: now[0])
    return now


def test_a_ready_transaction_is_mined_only_once_it_has_waited(clock):
    node = ScriptedNode()
    pool = StuckPool(node, stuck_after=1.0)
    node.pending = ["0xa"]
    assert pool.check() is False  # first seen: anvil may be mining it right now
    clock[0] += 0.5
    node.pending = ["0xa", "0xb"]
    assert pool.check() is False and node.blocks == []
    clock[0] += 0.5  # 0xa has waited 1 s: stuck; 0xb goes into the same block
    assert pool.check() is True
    assert node.blocks == [["0xa", "0xb"]] and pool.mined == 1
    assert pool.check() is False and len(node.blocks) == 1  # an empty pool mines nothing


def test_a_transaction_mined_meanwhile_is_forgotten(clock):
    node = ScriptedNode()
    pool = StuckPool(node, stuck_after=1.0)
    node.pending = ["0xa"]
    pool.check()
    node.pending = []  # anvil mined it
    clock[0] += 0.9
    pool.check()
    node.pending = ["0xc"]  # a new one, seen now for the first time
    clock[0] += 0.9
    assert pool.check() is False and node.blocks == []


def test_with_automine_off_the_pool_is_never_touched(clock):
    node = ScriptedNode(automine=False)
    pool = StuckPool(node, stuck_after=0.0)
    node.pending = ["0xa"]
    for _ in range(3):
        clock[0] += 5
        assert pool.check() is False
    assert node.blocks == [] and node.pending == ["0xa"]


def test_a_queued_transaction_nothing_holds_back_is_sent_again_once_it_has_waited(clock):
    node = ScriptedNode()
    node.account_nonce = 7
    node.queued = {7: "0xa", 8: "0xb"}  # 7 is the account's next nonce: nothing is missing
    pool = StuckPool(node, stuck_after=1.0)
    assert pool.check() is False and node.blocks == []
    clock[0] += 1.0
    assert pool.check() is True
    # Both go back, lowest nonce first, and are mined; no block was mined by hand.
    assert node.blocks == [["0xa"], ["0xb"]] and node.queued == {}
    assert pool.resent == 2 and pool.mined == 0
    assert pool.settled()


def test_a_transaction_queued_behind_a_real_gap_is_left_alone(clock):
    node = ScriptedNode()
    node.account_nonce = 7
    node.queued = {9: "0xc"}  # nonce 8 was never sent: no block may take 9
    pool = StuckPool(node, stuck_after=1.0)
    for _ in range(3):
        clock[0] += 5
        assert pool.check() is False
    assert node.queued == {9: "0xc"} and node.blocks == [] and pool.settled()


def test_a_pool_that_changes_while_read_is_left_for_the_next_look(clock):
    node = ScriptedNode()
    node.queued = {0: "0xa"}
    pool = StuckPool(node, stuck_after=0.0)

    def a_worker_sends_the_next_nonce() -> None:
        node.queued[1] = "0xd"

    node.on_raw_read = a_worker_sends_the_next_nonce
    # Taking the pool out now would lose 0xd, whose bytes were not read: nothing is done.
    assert pool.check() is False
    assert node.queued == {0: "0xa", 1: "0xd"} and node.blocks == []
    node.on_raw_read = lambda: None
    clock[0] += 0.5
    assert pool.check() is True and node.blocks == [["0xa"], ["0xd"]]


def test_a_send_the_node_refuses_does_not_stop_the_later_ones(clock):
    node = ScriptedNode()
    node.queued = {0: "0xa", 1: "0xb"}
    node.refused = {"0xa"}  # e.g. a worker re-broadcast it first: "already known"
    pool = StuckPool(node, stuck_after=0.0)
    assert pool.check() is True
    assert node.blocks == [["0xb"]] and pool.resent == 1


def _transfer(w3: Web3, key: str, nonce: int) -> str:
    signed = Account.from_key(key).sign_transaction(
        {
            "to": Account.from_key(key).address,
            "value": 0,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "nonce": nonce,
            "chainId": w3.eth.chain_id,
        }
    )
    return str(rpc(w3, "eth_sendRawTransaction", [signed.raw_transaction.to_0x_hex()]))


def test_on_anvil_a_ready_transaction_is_seen_and_one_behind_a_gap_is_not(w3, anvil):
    key = anvil.keys[6]
    nonce = w3.eth.get_transaction_count(Account.from_key(key).address)
    pool = StuckPool(node_call(w3), stuck_after=0.0)
    with no_automine(w3):
        ready = _transfer(w3, key, nonce)
        assert pool.pending() == {ready}  # the shape of anvil's txpool_content
        rpc(w3, "evm_mine", [])
    # Automine on, a nonce gap: the transaction waits in "queued", which no block can take,
    # so the helper mines nothing for it however long it waits.
    head = w3.eth.block_number
    behind_gap = _transfer(w3, key, nonce + 2)
    assert pool.pending() == set()
    assert pool.check() is False and w3.eth.block_number == head
    # The gap filled, anvil mines both; nothing is left for the helper.
    _transfer(w3, key, nonce + 1)
    while int(rpc(w3, "txpool_status", [])["pending"], 16) or int(
        rpc(w3, "txpool_status", [])["queued"], 16
    ):
        pool.check()
    assert w3.eth.get_transaction_receipt(behind_gap)["status"] == 1


def test_on_anvil_a_transaction_queued_for_nothing_is_sent_again_and_mined(w3, anvil):
    key = anvil.keys[6]
    sender = Account.from_key(key).address
    nonce = w3.eth.get_transaction_count(sender)
    with no_automine(w3):
        stranded = _transfer(w3, key, nonce + 1)  # queued: nonce is missing
        # The nonce before it used up without the pool being told: anvil's race, on demand.
        rpc(w3, "anvil_setNonce", [sender, hex(nonce + 1)])
    rpc(w3, "evm_mine", [])  # a block does not take it: the state a journey most likely hung in
    assert rpc(w3, "txpool_status", []) == {"pending": "0x0", "queued": "0x1"}
    with JsonRpc(anvil.url) as node:
        pool = StuckPool(node.call, stuck_after=0.0)
        assert not pool.settled()
        assert pool.check() is True and pool.resent == 1 and pool.mined == 0
        while not pool.settled():  # automine takes it in the background
            pool.check()
    receipt = w3.eth.wait_for_transaction_receipt(stranded, timeout=30)
    assert receipt["status"] == 1
    assert w3.eth.get_transaction_count(sender) == nonce + 2


def test_the_ticker_thread_mines_a_missed_transaction_and_outlives_a_node_error():
    node = ScriptedNode()
    node.pending = ["0xa"]
    answers = iter([RpcUnavailable("node restarting")])

    def flaky(method: str, params: list[Any]) -> Any:
        failure = next(answers, None)
        if failure is not None:
            raise failure
        return node(method, params)

    with MinesMissed(call=flaky, every=0.01, stuck_after=0.05) as keeper:
        while not node.blocks:
            assert keeper.thread.is_alive()
    assert node.blocks == [["0xa"]] and node.pending == []
    assert not keeper.thread.is_alive()
