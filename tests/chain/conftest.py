"""Fixtures for the indexer tests: a dedicated anvil per module (reorgs and rollbacks must not
disturb the session chain), test tokens recorded in a deployments file, fresh PostgreSQL
databases, and indexers bound to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from web3 import Web3

from backend.chain.anvil import AnvilNode, start_anvil
from backend.chain.indexer import Indexer, JsonRpc
from backend.chain.registry import DeployedContract, Deployments, artifact, save_deployments
from tests.conftest import RUN_ID, _truncate_all, alembic_upgrade


@dataclass
class Chain:
    node: AnvilNode
    w3: Web3
    deployments_dir: Path
    token: str = ""  # PlainERC20, in the deployments file
    nft: str = ""  # PlainERC721, watched at runtime by the tests that need it
    nft_block: int = 0

    def rpc(self, method: str, params: list[Any]) -> Any:
        resp = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        assert "error" not in resp, resp
        return resp["result"]

    def account(self, i: int) -> str:
        return str(Account.from_key(self.node.keys[i]).address)

    def deploy(self, name: str) -> tuple[str, int]:
        art = artifact(name)
        tx = self.w3.eth.send_transaction(
            {"from": self.account(0), "data": art.bytecode, "gas": 5_000_000}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        return str(receipt["contractAddress"]), int(receipt["blockNumber"])

    def calldata(self, name: str, fn: str, *args: Any) -> str:
        c = self.w3.eth.contract(abi=artifact(name).abi)
        return str(c.encode_abi(fn, list(args)))

    def send(self, to: str, data: str, sender: int = 0) -> str:
        tx = self.w3.eth.send_transaction(
            {"from": self.account(sender), "to": to, "data": data, "gas": 300_000}
        )
        self.w3.eth.wait_for_transaction_receipt(tx)
        return "0x" + tx.hex().removeprefix("0x")

    def mint(self, to: str, amount: int, sender: int = 0) -> str:
        return self.send(self.token, self.calldata("PlainERC20", "mint", to, amount), sender)

    def transfer(self, to: str, amount: int, sender: int) -> str:
        return self.send(self.token, self.calldata("PlainERC20", "transfer", to, amount), sender)

    def signed(self, to: str, data: str, key_index: int, nonce: int) -> str:
        tx = {
            "to": to,
            "data": data,
            "gas": 300_000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
            "nonce": nonce,
            "chainId": self.node.chain_id,
        }
        raw = Account.sign_transaction(tx, self.node.keys[key_index]).raw_transaction
        return "0x" + raw.hex()

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def mine(self, n: int = 1) -> None:
        self.rpc("anvil_mine", [hex(n)])


@pytest.fixture(scope="module")
def index_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    folder = tmp_path_factory.mktemp("indexer-chain")
    node = start_anvil(folder / "anvil.log")
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))
    c = Chain(node, w3, folder / "deployments")
    c.token, block = c.deploy("PlainERC20")
    save_deployments(
        c.deployments_dir,
        Deployments(
            node.chain_id,
            {"test.Token": DeployedContract("test.Token", "PlainERC20", c.token, block, "0x")},
        ),
    )
    c.nft, c.nft_block = c.deploy("PlainERC721")
    yield c
    node.stop()


@pytest.fixture
def fresh_chain(index_chain: Chain) -> Iterator[Chain]:
    """The module chain, with every change a test makes reverted after it."""
    snap = index_chain.rpc("evm_snapshot", [])
    yield index_chain
    index_chain.rpc("evm_revert", [snap])


@pytest.fixture(scope="module")
def index_dbs(pg_database: Callable[[str], str], request: pytest.FixtureRequest) -> list[str]:
    """Two migrated PostgreSQL databases per module: the live projection and a re-scan."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    urls = []
    for which in ("live", "rescan"):
        url = pg_database(f"{label}_{which}")
        alembic_upgrade(url)
        urls.append(url)
    return urls


@pytest.fixture
def engines(index_dbs: list[str]) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    live, rescan = (sa.create_engine(u) for u in index_dbs)
    yield live, rescan
    live.dispose()
    rescan.dispose()
    for url in index_dbs:
        _truncate_all(url)


@pytest.fixture
def make_indexer(index_chain: Chain) -> Callable[..., Indexer]:
    chain = index_chain

    def make(engine: sa.Engine, **kw: Any) -> Indexer:
        kw.setdefault("confirmations", 0)
        kw.setdefault("chunk_size", 5)
        kw.setdefault("deployments_dir", chain.deployments_dir)
        return Indexer(engine, JsonRpc(chain.node.url), **kw)

    return make


@pytest.fixture
def test_queue() -> str:
    return f"furusato-indexer-{RUN_ID}"
