"""The indexer's Celery tasks under failure: a worker SIGKILLed mid-batch and restarted loses and
duplicates nothing; with the RPC node down the task retries with backoff and recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa
from celery.contrib.testing.worker import start_worker
from sqlalchemy.orm import Session
from web3 import Web3

from backend.chain.anvil import start_anvil
from backend.chain.indexer import JsonRpc, projection_snapshot, reconcile
from backend.chain.indexer_models import ChainEventRecord
from backend.chain.registry import DeployedContract, Deployments, artifact, save_deployments
from tests.chain.conftest import Chain
from tests.conftest import REDIS_URL, ROOT

BLOCKS, PER_BLOCK = 30, 100


def _count(engine: sa.Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(ChainEventRecord)) or 0)


def _fill(chain: Chain) -> int:
    """BLOCKS blocks of PER_BLOCK ERC-20 mints each; returns the number of events."""
    rpc = JsonRpc(chain.node.url, timeout=30)
    nonce = chain.w3.eth.get_transaction_count(chain.account(0))
    chain.rpc("evm_setAutomine", [False])
    try:
        for b in range(BLOCKS):
            rpc.batch(
                [
                    (
                        "eth_sendTransaction",
                        [
                            {
                                "from": chain.account(0),
                                "to": chain.token,
                                "data": chain.calldata(
                                    "PlainERC20", "mint", chain.account(1 + i % 9), b * 1000 + i + 1
                                ),
                                "gas": hex(100_000),
                                "nonce": hex(nonce + b * PER_BLOCK + i),
                            }
                        ],
                    )
                    for i in range(PER_BLOCK)
                ]
            )
            chain.mine(1)
    finally:
        chain.rpc("evm_setAutomine", [True])
    return BLOCKS * PER_BLOCK


def _worker(tmp: Path, chain: Chain, db_url: str, queue: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "INSTANCE_PATH": str(tmp / "instance"),
        "SECRET_KEY": "test",
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "RPC_URL": chain.node.url,
        "DEPLOYMENTS_DIR": str(chain.deployments_dir),
        "CONFIRMATIONS": "0",
        "INDEXER_CHUNK_SIZE": "1",
        "INDEXER_BATCH_EVENTS": str(PER_BLOCK),  # one block per transaction
        # The task is what is killed and asked again: no block watcher indexing beside it
        # (it would make the task's answer "busy"; tests/chain/test_block_watcher.py has it).
        "BLOCK_WATCH_INTERVAL": "0",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "tests.chain._worker", "worker"]
            + ["--pool", "solo", "-Q", queue, "--loglevel", "WARNING"]
            + ["--without-heartbeat", "--without-gossip"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_sigkill_worker_mid_batch_then_restart(
    fresh_chain, engines, make_indexer, make_app, tmp_path, test_queue
):
    from backend.chain.indexer_tasks import index_blocks

    chain = fresh_chain
    live, rescan = engines
    total = _fill(chain)
    url = live.url.render_as_string(hide_password=False)
    make_app(database_url=url, rpc_url=chain.node.url, deployments_dir=chain.deployments_dir)
    queue = f"{test_queue}-kill"
    log = tmp_path / "worker.log"
    worker = _worker(tmp_path, chain, url, queue, log)
    try:
        index_blocks.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while _count(live) == 0:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        at_kill = _count(live)
        assert 0 < at_kill < total, "the kill must land mid-way through the backfill"
        assert at_kill % PER_BLOCK == 0, "a chunk is committed whole or not at all"
        worker = _worker(tmp_path, chain, url, queue, log)
        result = index_blocks.apply_async(queue=queue, ignore_result=False).get(timeout=60)
        assert result["caught_up"], result
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(20)
    assert _count(live) == total
    make_indexer(rescan, chunk_size=10_000).run()
    assert projection_snapshot(live, 31337) == projection_snapshot(rescan, 31337)
    checked, diffs = reconcile(live, JsonRpc(chain.node.url), chain.node.chain_id)
    assert diffs == [] and checked == 10  # 9 holders and the total supply


def test_rpc_down_retries_with_backoff_and_recovers(engines, make_app, tmp_path):
    from backend.chain.indexer_tasks import index_blocks

    live, _ = engines
    state = tmp_path / "anvil-state.json"
    node = start_anvil(tmp_path / "anvil.log", state_path=state)
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        tx = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "data": artifact("PlainERC20").bytecode, "gas": 3_000_000}
        )
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        token = receipt["contractAddress"]
        deployments = tmp_path / "deployments"
        save_deployments(
            deployments,
            Deployments(
                31337,
                {
                    "test.Token": DeployedContract(
                        "test.Token", "PlainERC20", token, receipt["blockNumber"], "0x"
                    )
                },
            ),
        )
        mint = w3.eth.contract(address=token, abi=artifact("PlainERC20").abi).functions.mint
        w3.eth.wait_for_transaction_receipt(
            mint(w3.eth.accounts[1], 5).transact({"from": w3.eth.accounts[0]})
        )
        app = make_app(
            database_url=live.url.render_as_string(hide_password=False),
            rpc_url=node.url,
            deployments_dir=deployments,
            rpc_timeout=1.0,
        )
        celery = app.extensions["celery"]
        with start_worker(
            celery,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            queues=[celery.conf.task_default_queue],
            shutdown_timeout=10,
        ):
            node.stop()
            result = index_blocks.apply_async(ignore_result=False)
            deadline = time.monotonic() + 20
            while result.state != "RETRY":
                assert time.monotonic() < deadline, result.state
                time.sleep(0.05)
            node = start_anvil(tmp_path / "anvil.log", port=node.port, state_path=state)
            out = result.get(timeout=60)
        assert out["caught_up"] and out["events"] == 1
        assert _count(live) == 1
    finally:
        node.stop()
