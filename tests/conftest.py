"""Shared fixtures: a real anvil node, a web3 client with snapshot/revert per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from backend.chain.anvil import AnvilNode, start_anvil

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def anvil(artifacts_dir: Path) -> Iterator[AnvilNode]:
    """One anvil per test session on a free port, logging to test-artifacts/anvil-*.log."""
    node = start_anvil(artifacts_dir / f"anvil-{os.getpid()}.log")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def session_w3(anvil: AnvilNode) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))


@pytest.fixture
def w3(session_w3: Web3) -> Iterator[Web3]:
    """web3 on the session's anvil; every change a test makes to the chain is reverted after it."""
    snap = session_w3.provider.make_request("evm_snapshot", [])["result"]
    yield session_w3
    session_w3.provider.make_request("evm_revert", [snap])
