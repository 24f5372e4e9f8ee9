"""Fixtures of the "pages read the projection" tests (issue 16 §1): a JSON-RPC proxy in front of
the session's anvil that counts every call the app sends (tests/rpc_counter.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.chain.anvil import AnvilNode
from tests.rpc_counter import RpcCounter


@pytest.fixture(scope="session")
def rpc_counter(anvil: AnvilNode) -> Iterator[RpcCounter]:
    with RpcCounter(anvil.url) as counter:
        yield counter
