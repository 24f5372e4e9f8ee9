"""The test chain's clock after a test: evm_revert turns anvil's clock back by the reverted
test's length, and the w3 fixture moves it forward to the wall clock again
(tests/conftest.py `_clock_back_to_the_wall`), so that the lag does not add up over a worker's
session (it reached minutes, and failed tests that compare the chain's "now" with the wall
clock late in long runs)."""

from __future__ import annotations

import time

from web3 import Web3

from tests.conftest import _clock_back_to_the_wall


def _pending_time(w3: Web3) -> int:
    block = w3.provider.make_request("eth_getBlockByNumber", ["pending", False])["result"]
    return int(block["timestamp"], 16)


def test_a_revert_leaves_the_clock_behind_and_the_fixture_brings_it_back(w3: Web3) -> None:
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    # A test that lasts two seconds: the lag is what this test is about, so it is made here.
    time.sleep(2)
    w3.provider.make_request("evm_revert", [snap])
    assert _pending_time(w3) <= time.time() - 1.5  # anvil's own behaviour: behind by the test
    _clock_back_to_the_wall(w3)
    assert _pending_time(w3) >= int(time.time()) - 1
    # Moving the clock on from there still works as a test expects (no pending override).
    before = _pending_time(w3)
    w3.provider.make_request("evm_increaseTime", [3600])
    assert _pending_time(w3) >= before + 3600
