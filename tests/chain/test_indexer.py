"""The event indexer against a real anvil and real PostgreSQL: backfill, exactly-once storage,
reorgs (anvil_reorg at depths 1-10, anvil_rollback), pending state, the per-chain lock, runtime
watched contracts, handlers with revert hooks, and reconciliation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from backend.chain.gateway import ChainUnavailable
from backend.chain.indexer import (
    ChainEvent,
    Indexer,
    JsonRpc,
    pending_events,
    projection_snapshot,
    reconcile,
    register_handler,
    unregister_handler,
    watch_contract,
)
from backend.chain.indexer_models import ChainBlock, ChainEventRecord, ReconciliationReport
from backend.chain.registry import DeployedContract, Deployments, load_deployments, save_deployments
from tests.chain.conftest import Chain


def _watch_nft(engine: sa.Engine, chain: Chain) -> None:
    with Session(engine) as s, s.begin():
        watch_contract(
            s, chain.node.chain_id, "test.Nft", "PlainERC721", chain.nft, chain.nft_block
        )


def _raw_log_ids(chain: Chain) -> list[tuple[str, int]]:
    logs = chain.rpc(
        "eth_getLogs",
        [{"address": [chain.token, chain.nft], "fromBlock": "0x0", "toBlock": "latest"}],
    )
    return sorted((lg["transactionHash"], int(lg["logIndex"], 16)) for lg in logs)


def _stored_ids(engine: sa.Engine) -> list[tuple[str, int]]:
    with Session(engine) as s:
        rows = s.execute(sa.select(ChainEventRecord.tx_hash, ChainEventRecord.log_index)).all()
    return sorted((t, i) for t, i in rows)


def _assert_equals_fresh_rescan(
    chain: Chain, live: sa.Engine, rescan: sa.Engine, make_indexer: Callable[..., Indexer]
) -> None:
    _watch_nft(rescan, chain)
    make_indexer(rescan, chunk_size=10_000).run()
    got, want = projection_snapshot(live, chain.node.chain_id), projection_snapshot(rescan, 31337)
    assert got == want
    ids = _stored_ids(live)
    assert len(ids) == len(set(ids)), "duplicated events"
    assert ids == _raw_log_ids(chain), "lost or extra events"
    checked, diffs = reconcile(live, JsonRpc(chain.node.url), chain.node.chain_id)
    assert diffs == [] and checked > 0


def _activity(chain: Chain, blocks: int) -> None:
    """`blocks` blocks, each with an ERC-20 mint or transfer and every third an NFT mint."""
    for i in range(blocks):
        if i % 2:
            chain.transfer(chain.account(5), 3 + i, sender=3)
        else:
            chain.mint(chain.account(3), 100 + i)
        if i % 3 == 0:
            chain.send(chain.nft, chain.calldata("PlainERC721", "mint", chain.account(3), 1000 + i))


def test_backfill_stores_each_event_once_with_blocks(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, _ = engines
    chain.mint(chain.account(1), 10**30)
    chain.transfer(chain.account(2), 5, sender=1)
    first = make_indexer(live).run()
    assert first.caught_up and first.events >= 2 and first.chunks >= 1
    assert make_indexer(live).run().events == 0  # nothing twice
    with Session(live) as s:
        ev = s.scalars(
            sa.select(ChainEventRecord)
            .order_by(ChainEventRecord.block_number.desc(), ChainEventRecord.log_index.desc())
            .limit(1)
        ).one()
        block = s.get(ChainBlock, (chain.node.chain_id, ev.block_number))
    assert ev.event_name == "Transfer" and ev.contract_key == "test.Token"
    assert ev.args == {"from": chain.account(1), "to": chain.account(2), "value": 5}
    assert block is not None and block.hash == ev.block_hash
    header = chain.w3.eth.get_block(ev.block_number)
    assert block.parent_hash == "0x" + header["parentHash"].hex().removeprefix("0x")
    snap = projection_snapshot(live, chain.node.chain_id)
    assert (chain.token, chain.account(1), 10**30 - 5) in snap["balances"]
    with Session(live) as s, pytest.raises(sa.exc.IntegrityError), s.begin():
        s.add(
            ChainEventRecord(
                **{c: getattr(ev, c) for c in ("chain_id", "contract_key", "contract_address")},
                event_name="Transfer",
                args={},
                block_number=ev.block_number,
                block_hash=ev.block_hash,
                tx_hash=ev.tx_hash,
                log_index=ev.log_index,
            )
        )


@pytest.mark.parametrize("depth", range(1, 11))
def test_anvil_reorg_projection_equals_fresh_rescan(depth, fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, rescan = engines
    _watch_nft(live, chain)
    chain.mint(chain.account(3), 10**21)
    _activity(chain, depth + 2)
    assert make_indexer(live).run().caught_up
    head = chain.head()
    fork = head - depth
    nonce = chain.w3.eth.get_transaction_count(chain.account(2), fork)
    replacement = [
        [
            chain.signed(
                chain.token, chain.calldata("PlainERC20", "mint", chain.account(4), 77), 2, nonce
            ),
            0,
        ],
        [
            chain.signed(
                chain.nft,
                chain.calldata("PlainERC721", "mint", chain.account(4), 5000 + depth),
                2,
                nonce + 1,
            ),
            depth - 1,
        ],
    ]
    chain.rpc("anvil_reorg", [depth, replacement])
    assert chain.head() == head
    result = make_indexer(live).run()
    assert result.reorgs >= 1 and result.rolled_back_events >= 1
    _assert_equals_fresh_rescan(chain, live, rescan, make_indexer)
    snap = projection_snapshot(live, chain.node.chain_id)
    assert (chain.nft, 5000 + depth, chain.account(4)) in snap["owners"]


def test_anvil_rollback_then_new_blocks(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, rescan = engines
    _watch_nft(live, chain)
    chain.mint(chain.account(3), 10**21)
    _activity(chain, 6)
    make_indexer(live).run()
    chain.rpc("anvil_rollback", [4])
    result = make_indexer(live).run()  # the chain got shorter: roll back, nothing to re-index
    assert result.reorgs == 1
    chain.mint(chain.account(6), 42)
    chain.mint(chain.account(6), 43)
    make_indexer(live).run()
    _assert_equals_fresh_rescan(chain, live, rescan, make_indexer)


def test_handlers_apply_and_revert_newest_first(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, _ = engines
    seen: list[tuple[str, ChainEvent]] = []

    def apply(_s: Session, events: Any) -> None:
        seen.extend(("apply", ev) for ev in events)

    def revert(_s: Session, events: Any) -> None:
        seen.extend(("revert", ev) for ev in events)

    handler = register_handler("Transfer", apply, revert, contract="test.Token")
    try:
        for i in range(4):
            chain.mint(chain.account(7), i + 1)
        make_indexer(live).run()
        chain.rpc("anvil_reorg", [2, []])
        make_indexer(live).run()
    finally:
        unregister_handler(handler)
    reverted = [ev for kind, ev in seen if kind == "revert"]
    assert [ev.args["value"] for ev in reverted] == [4, 3]  # newest first
    net = Counter((ev.tx_hash, ev.log_index) for kind, ev in seen if kind == "apply")
    net.subtract((ev.tx_hash, ev.log_index) for ev in reverted)
    with Session(live) as s:
        tokens = s.execute(
            sa.select(ChainEventRecord.tx_hash, ChainEventRecord.log_index).where(
                ChainEventRecord.contract_address == chain.token
            )
        ).all()
    assert +net == Counter((t, i) for t, i in tokens)
    assert all(ev.contract_name == "PlainERC20" and ev.confirmed for _, ev in seen)


def test_each_event_goes_to_the_handlers_of_its_name_in_registration_order(
    fresh_chain, engines, make_indexer
):
    """A chunk's decoder groups the handlers by event name (storage._ChunkDecoder): each still
    gets every event of its name and contract, in the order the handlers were registered, and
    a handler of another event name gets none."""
    chain = fresh_chain
    live, _ = engines
    calls: list[tuple[str, list[tuple[str, Any]]]] = []

    def recorder(name: str) -> Callable[[Session, Any], None]:
        def apply(_s: Session, events: Any) -> None:
            got = [(ev.contract_key, ev.args.get("value")) for ev in events]
            if got:
                calls.append((name, got))

        return apply

    def revert(_s: Session, events: Any) -> None:
        raise AssertionError("no reorg in this test")

    handlers = [
        register_handler("Transfer", recorder("token transfers"), revert, contract="test.Token"),
        register_handler("Approval", recorder("approvals"), revert),
        register_handler("Transfer", recorder("every transfer"), revert),
    ]
    try:
        for i in range(3):
            chain.mint(chain.account(7), i + 1)
        make_indexer(live).run()
    finally:
        for handler in handlers:
            unregister_handler(handler)
    minted = [("test.Token", 1), ("test.Token", 2), ("test.Token", 3)]
    assert calls == [("token transfers", minted), ("every transfer", minted)]


def test_handler_events_carry_their_block_time(fresh_chain, engines, make_indexer):
    """Every event a handler gets carries its block's header timestamp (read by the indexer with
    the headers), applied and reverted (the events rebuilt from the stored rows on a reorg)."""
    chain = fresh_chain
    live, _ = engines
    seen: list[tuple[str, ChainEvent]] = []

    def apply(_s: Session, events: Any) -> None:
        seen.extend(("apply", ev) for ev in events)

    def revert(_s: Session, events: Any) -> None:
        seen.extend(("revert", ev) for ev in events)

    handler = register_handler("Transfer", apply, revert, contract="test.Token")
    try:
        for i in range(5):
            chain.rpc("evm_increaseTime", [1_000 + i])  # every block its own time
            chain.mint(chain.account(7), i + 1)
        make_indexer(live, chunk_size=3).run()
        header_time = {
            ev.block_number: int(
                chain.rpc("eth_getBlockByNumber", [hex(ev.block_number), False])["timestamp"], 16
            )
            for _, ev in seen
        }
        chain.rpc("anvil_reorg", [2, []])
        make_indexer(live).run()
    finally:
        unregister_handler(handler)
    applied = [ev for kind, ev in seen if kind == "apply"]
    reverted = [ev for kind, ev in seen if kind == "revert"]
    assert len(applied) == 5 and len(reverted) == 2
    assert len(set(header_time.values())) == 5
    for ev in applied + reverted:
        assert ev.block_time == header_time[ev.block_number], ev


def test_pending_until_confirmed(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, _ = engines
    make_indexer(live, confirmations=2).run()
    tx = chain.mint(chain.account(8), 99)
    make_indexer(live, confirmations=2).run()
    with Session(live) as s:
        pending = pending_events(s, chain.node.chain_id)
    assert [(ev.tx_hash, ev.confirmed, ev.args["value"]) for ev in pending] == [(tx, False, 99)]
    assert tx not in {t for t, _ in _stored_ids(live)}
    chain.mine(2)
    make_indexer(live, confirmations=2).run()
    with Session(live) as s:
        assert pending_events(s, chain.node.chain_id) == []
    assert tx in {t for t, _ in _stored_ids(live)}


class _PendingFetchFails(JsonRpc):
    """A JsonRpc whose node does not answer eth_getLogs of blocks above `limit` (the pending
    range; the confirmed chunks are below it)."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(url)
        self.limit = limit

    def get_logs(self, addresses: list[str], frm: int, to: int) -> list[dict[str, Any]]:
        if frm > self.limit:
            raise ChainUnavailable("node down")
        return super().get_logs(addresses, frm, to)


def test_pending_fetch_fails_after_a_step_keeps_what_it_indexed(fresh_chain, engines, make_indexer):
    """The caught-up step refreshes the pending events in its own transaction: when the node
    fails that fetch, the events it indexed are committed all the same, the pending ones stay
    as they were, and the run raises (the task retries); the next run catches up."""
    chain = fresh_chain
    live, _ = engines
    first = chain.mint(chain.account(8), 99)
    make_indexer(live, confirmations=2).run()
    second = chain.mint(chain.account(8), 7)
    chain.mine(1)  # `first` is confirmed now, `second` is not
    target = chain.head() - 2
    indexer = make_indexer(live, confirmations=2)
    indexer.rpc = _PendingFetchFails(chain.node.url, target)
    with pytest.raises(ChainUnavailable):
        indexer.run()
    assert first in {t for t, _ in _stored_ids(live)}
    with Session(live) as s:
        assert [ev.tx_hash for ev in pending_events(s, chain.node.chain_id)] == [first]
        cursor = s.scalar(sa.text("SELECT block_number FROM chain_cursors"))
    assert cursor == target
    make_indexer(live, confirmations=2).run()
    with Session(live) as s:
        assert [ev.tx_hash for ev in pending_events(s, chain.node.chain_id)] == [second]
    ids = _stored_ids(live)
    assert first in {t for t, _ in ids} and second not in {t for t, _ in ids}
    assert len(ids) == len(set(ids))


def test_one_indexer_per_chain(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, _ = engines
    make_indexer(live).run()
    chain.mint(chain.account(1), 1)
    with live.connect() as holder:
        holder.execute(sa.text("SELECT * FROM chain_cursors FOR UPDATE"))
        assert make_indexer(live).run().busy
        holder.rollback()
    result = make_indexer(live).run()
    assert not result.busy and result.events == 1


def test_runtime_watched_contract_backfills_from_its_block(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, rescan = engines
    chain.send(chain.nft, chain.calldata("PlainERC721", "mint", chain.account(1), 7))
    chain.mint(chain.account(1), 5)
    first = make_indexer(live).run()
    _watch_nft(live, chain)
    second = make_indexer(live).run()
    assert second.events == 1  # only the NFT mint: the token is not indexed twice
    assert first.events + second.events == len(_raw_log_ids(chain))
    _assert_equals_fresh_rescan(chain, live, rescan, make_indexer)


def test_contract_added_to_the_deployments_file_is_watched_by_the_next_run(
    fresh_chain, engines, make_indexer, tmp_path
):
    """Each run watches the deployments file's contracts that the database does not yet (a
    fresh database, or a contract deployed since), from their deployment block; the others
    are not indexed twice."""
    chain = fresh_chain
    live, rescan = engines
    chain.send(chain.nft, chain.calldata("PlainERC721", "mint", chain.account(1), 11))
    chain.mint(chain.account(1), 5)
    first = make_indexer(live).run()
    deployments = load_deployments(chain.deployments_dir, chain.node.chain_id)
    nft = DeployedContract("test.Nft", "PlainERC721", chain.nft, chain.nft_block, "0x")
    save_deployments(
        tmp_path, Deployments(deployments.chain_id, {**deployments.contracts, "test.Nft": nft})
    )
    second = make_indexer(live, deployments_dir=tmp_path).run()
    assert second.events == 1  # the NFT mint only
    assert first.events + second.events == len(_raw_log_ids(chain))
    with Session(live) as s:
        rows = s.execute(sa.text("SELECT key, source FROM watched_contracts ORDER BY key")).all()
    assert [tuple(r) for r in rows] == [("test.Nft", "deployments"), ("test.Token", "deployments")]
    _assert_equals_fresh_rescan(chain, live, rescan, make_indexer)


def test_reconciliation_reports_every_difference(fresh_chain, engines, make_indexer, make_app):
    from backend.chain.indexer_tasks import index_blocks, reconcile_projection

    chain = fresh_chain
    live, _ = engines
    _watch_nft(live, chain)
    chain.mint(chain.account(1), 1000)
    chain.send(chain.nft, chain.calldata("PlainERC721", "mint", chain.account(1), 9))
    app = make_app(
        database_url=live.url.render_as_string(hide_password=False),
        rpc_url=chain.node.url,
        deployments_dir=chain.deployments_dir,
    )
    assert index_blocks.apply().get()["caught_up"]
    assert reconcile_projection.apply().get()["differences"] == []
    with live.begin() as conn:
        conn.execute(sa.text("UPDATE chain_token_balances SET amount = amount + 1"))
        conn.execute(sa.text(f"UPDATE chain_token_owners SET owner = '{chain.account(2)}'"))
    out = reconcile_projection.apply().get()
    kinds = sorted(d["kind"] for d in out["differences"])
    assert kinds == ["balance", "nft_balance", "owner", "total_supply"]
    with app.app_context(), Session(live) as s:
        report = s.get(ReconciliationReport, out["report_id"])
        assert report is not None and not report.ok and len(report.differences) == 4


class _ReorgAfterAnswer(JsonRpc):
    """A JsonRpc that reorganises the chain once, right after the `at`-th eth_getLogs answer
    has been read off the socket: that answer comes from the old branch, every header read
    after it from the new one. The new branch starts `back` blocks below that chunk's first
    block and mints `value` to account 4 in its first block."""

    def __init__(self, chain: Chain, at: int, back: int, value: int) -> None:
        super().__init__(chain.node.url)
        self.chain, self.at, self.back, self.value = chain, at, back, value
        self.answers, self.fork = 0, -1

    def _read_logs_answer(self, pending: Any) -> bytes:
        body = super()._read_logs_answer(pending)
        self.answers += 1
        if self.answers == self.at:
            chain = self.chain
            self.fork = pending.frm - self.back
            depth = chain.head() - self.fork + 1
            nonce = chain.w3.eth.get_transaction_count(chain.account(2), self.fork - 1)
            data = chain.calldata("PlainERC20", "mint", chain.account(4), self.value)
            chain.rpc("anvil_reorg", [depth, [[chain.signed(chain.token, data, 2, nonce), 0]]])
        return body


@pytest.mark.parametrize(("at", "back"), [(1, 0), (3, 0), (3, 3)])
def test_reorg_while_chunks_are_fetched_ahead(at, back, fresh_chain, engines, make_indexer):
    """A reorg between a chunk's eth_getLogs and the headers read after it, while later chunks
    are fetched ahead and earlier chunks of the same transaction are written but not committed
    (back=3: the new branch also replaces the previous chunk's blocks): nothing of the old
    branch is kept, and the projection equals a fresh re-scan."""
    chain = fresh_chain
    live, rescan = engines
    _watch_nft(live, chain)
    chain.mint(chain.account(3), 10**21)
    _activity(chain, 4)
    make_indexer(live).run()  # so that the new branch starts above what is stored
    _activity(chain, 14)
    rpc = _ReorgAfterAnswer(chain, at, back, 777)
    indexer = Indexer(
        live, rpc, deployments_dir=chain.deployments_dir, confirmations=0, chunk_size=2
    )
    result = indexer.run()
    assert rpc.answers > at + 2, "the reorg must land while the backfill is under way"
    assert result.caught_up
    _assert_equals_fresh_rescan(chain, live, rescan, make_indexer)
    snap = projection_snapshot(live, chain.node.chain_id)
    assert (chain.token, chain.account(4), 777) in snap["balances"]
    with Session(live) as s:
        fork_block = s.get(ChainBlock, (chain.node.chain_id, rpc.fork))
    assert fork_block is not None
    assert fork_block.hash == chain.rpc("eth_getBlockByNumber", [hex(rpc.fork), False])["hash"]


def _transactions_that_wrote_events(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT count(DISTINCT xmin::text) FROM chain_events")))


def test_a_transaction_takes_chunks_up_to_batch_events(fresh_chain, engines, make_indexer):
    chain = fresh_chain
    live, rescan = engines
    for i in range(6):
        chain.mint(chain.account(1), i + 1)  # one event per block
    many = make_indexer(live, chunk_size=1, batch_events=10_000).run()
    assert many.chunks >= 6 and many.events == 6
    assert _transactions_that_wrote_events(live) == 1  # all chunks in one commit
    few = make_indexer(rescan, chunk_size=1, batch_events=2).run()
    assert few.events == 6
    assert _transactions_that_wrote_events(rescan) == 3  # two events per commit
    assert projection_snapshot(live, 31337) == projection_snapshot(rescan, 31337)


def test_contracts_watched_from_different_blocks_catch_up_in_one_transaction(
    fresh_chain, engines, make_indexer
):
    """A fresh database's catch-up takes the first contract alone up to the block where the
    next one starts, then both: one transaction for all of it, not one per group (a town's
    deployment is dozens of contracts, each from its own block), with the same projection as
    one commit per chunk."""
    chain = fresh_chain
    live, rescan = engines
    for i in range(3):
        chain.mint(chain.account(1), i + 1)  # the token alone is watched at these blocks
    later, later_block = chain.deploy("PlainERC721")
    for engine in engines:
        with Session(engine) as s, s.begin():
            watch_contract(s, chain.node.chain_id, "test.Later", "PlainERC721", later, later_block)
    for i in range(3):
        chain.mint(chain.account(2), 10 + i)
        chain.send(later, chain.calldata("PlainERC721", "mint", chain.account(2), 500 + i))
    result = make_indexer(live).run()
    assert result.caught_up and result.events == 9 and result.chunks >= 3
    assert _transactions_that_wrote_events(live) == 1
    make_indexer(rescan, chunk_size=1, batch_events=1).run()
    assert _transactions_that_wrote_events(rescan) == 9  # the reference: a commit per event
    assert projection_snapshot(live, 31337) == projection_snapshot(rescan, 31337)
    assert _stored_ids(live) == _stored_ids(rescan)
