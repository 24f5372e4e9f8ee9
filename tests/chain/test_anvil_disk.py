"""The dev and test chain writes nothing to the disk it does not clean up.

anvil's default keeps the state of every block older than its in-memory window in
~/.foundry/anvil/tmp and leaves it there when stopped. A full test run left 9.5 GB, and a few
runs filled the machine's disk (a CI run then failed with "No space left on device").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from backend.chain.anvil import DEV_KEYS, start_anvil


def _files_under(folder: Path) -> list[Path]:
    return [f for f in folder.rglob("*") if f.is_file()]


def test_a_long_chain_leaves_no_state_files_and_keeps_recent_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # where anvil would write its state files
    node = start_anvil(tmp_path / "anvil.log")
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        holder = Account.from_key(DEV_KEYS[0]).address
        before = w3.eth.get_balance(holder)
        w3.provider.make_request("anvil_setBalance", [holder, hex(before + 1)])
        changed_at = w3.eth.block_number
        w3.provider.make_request("anvil_mine", [hex(700)])  # past anvil's 500 in-memory states
        head = w3.eth.block_number
        assert head >= changed_at + 700
        # The reads the app makes below the head still answer: the indexer's reconcile reads
        # at the block it indexed to, a revert is replayed at its block - 1.
        recent = head - 400
        assert w3.eth.get_balance(holder, block_identifier=recent) == before + 1
        assert w3.eth.get_balance(holder, block_identifier=head - 1) == before + 1
        assert _files_under(home) == []
    finally:
        node.stop()
    assert _files_under(home) == []
