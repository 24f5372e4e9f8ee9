"""The test helper that mines what anvil's automine missed (tests/anvil_pool.py).

anvil's miss could not be forced on demand (it was seen once in a full run; 300 rounds of
batched and out-of-order sends on a loaded machine did not repeat it, and turning automine on
mines what is pending). So the decision is tested against a scripted node, and what the helper
reads of a real anvil's pool (ready vs queued transactions, automine) against the session's."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from backend.chain.errors import RpcUnavailable
from tests.anvil_pool import MinesMissed, StuckPool
from tests.chain._reorg_helpers import no_automine, rpc


class ScriptedNode:
    """A pool whose ready transactions are mined only by evm_mine (anvil's miss)."""

    def __init__(self, automine: bool = True) -> None:
        self.automine = automine
        self.pending: list[str] = []
        self.blocks: list[list[str]] = []

    def __call__(self, method: str, params: list[Any]) -> Any:
        if method == "anvil_getAutomine":
            return self.automine
        if method == "txpool_content":
            by_nonce = {str(n): {"hash": h} for n, h in enumerate(self.pending)}
            return {"pending": {"0xsender": by_nonce} if by_nonce else {}, "queued": {}}
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
    pool = StuckPool(lambda method, params: rpc(w3, method, params), stuck_after=0.0)
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
