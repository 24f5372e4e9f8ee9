"""Indexer throughput: events/s from anvil into PostgreSQL, next to the ceiling and a baseline.

    .venv/bin/python -m bench.indexer [--blocks 40] [--per-block 500] [--chunk 10] [--repeat 3]
                                      [--paired N [--ab-unique]]

All three are measured in the same run, over the same blocks, from the same anvil:
- raw:      eth_getLogs of the range in the indexer's chunks, JSON parsed, nothing else (ceiling);
            it goes through the indexer's own client (JsonRpc.get_logs: http.client + json), so
            anything that makes the indexer's fetch or parse faster raises the ceiling as well
- naive:    web3.py get_logs + contract event process_log + one ORM insert per event
- indexer:  backend.chain.indexer (raw JSON-RPC, topic0 decode, COPY, blocks, the token
            projection handler, cursors), as the worker runs it (INDEXER_BATCH_EVENTS per commit)
The table takes the best of --repeat for each path. The machine's speed moves by tens of per cent
within minutes, so the best raw and the best indexer pass may come from different moods; --paired
N (default 20) then times N passes of raw followed at once by the indexer and prints the median
and range of their ratios (each pair shares the machine's mood): the 0.6x target is judged on
that median (on the best-of table with --paired 0); with
--ab-unique, every other pass runs without the UNIQUE (chain_id, tx_hash, log_index) constraint,
to measure what it costs (a decision aid: the schema keeps it).
Needs PostgreSQL (BENCH_PG_ADMIN_URL, default postgres@127.0.0.1:5432) and the anvil binary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.orm import Session
from web3 import Web3

from backend.chain.anvil import start_anvil
from backend.chain.indexer import Indexer, JsonRpc
from backend.chain.indexer_models import ChainEventRecord
from backend.chain.registry import (
    DeployedContract,
    Deployments,
    add_artifact_dir,
    artifact,
    save_deployments,
)

ROOT = Path(__file__).resolve().parent.parent
add_artifact_dir(ROOT / "tests" / "abi")  # PlainERC20 (contracts/test/) is not shipped
PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TABLES = "chain_events, chain_blocks, chain_cursors, watched_contracts, chain_token_balances"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fill(w3: Web3, rpc: JsonRpc, token: str, blocks: int, per_block: int) -> None:
    c = w3.eth.contract(address=token, abi=artifact("PlainERC20").abi)
    sender = w3.eth.accounts[0]
    holders = w3.eth.accounts[1:10]
    rpc.call("evm_setAutomine", [False])
    nonce = w3.eth.get_transaction_count(sender)
    for b in range(blocks):
        calls = []
        for i in range(per_block):
            data = c.encode_abi("mint", [holders[i % len(holders)], b * per_block + i + 1])
            tx = {
                "from": sender,
                "to": token,
                "data": data,
                "gas": hex(100_000),
                "nonce": hex(nonce),
            }
            nonce += 1
            calls.append(("eth_sendTransaction", [tx]))
        for j in range(0, len(calls), 250):
            rpc.batch(calls[j : j + 250])
        rpc.call("anvil_mine", ["0x1"])
    rpc.call("evm_setAutomine", [True])


def ranges(frm: int, to: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(a + chunk - 1, to)) for a in range(frm, to + 1, chunk)]


def bench_raw(rpc: JsonRpc, token: str, frm: int, to: int, chunk: int) -> tuple[int, float]:
    # The indexer pauses the cyclic GC while it handles a chunk (see _gc_paused): fetch under
    # the same condition, or a full collection set off by the previous path's garbage lands in
    # the ceiling now and then and makes it look lower than it is.
    gc.collect()
    gc.disable()
    try:
        t = time.perf_counter()
        n = sum(len(rpc.get_logs([token], a, b)) for a, b in ranges(frm, to, chunk))
        return n, time.perf_counter() - t
    finally:
        gc.enable()


def bench_naive(w3: Web3, engine: sa.Engine, token: str, frm: int, to: int, chunk: int) -> float:
    contract = w3.eth.contract(address=token, abi=artifact("PlainERC20").abi)
    transfer = contract.events.Transfer()
    t = time.perf_counter()
    for a, b in ranges(frm, to, chunk):
        logs = w3.eth.get_logs({"address": token, "fromBlock": a, "toBlock": b})
        with Session(engine) as s, s.begin():
            for lg in logs:
                ev = transfer.process_log(lg)
                s.add(
                    ChainEventRecord(
                        chain_id=31337,
                        contract_key="bench.Token",
                        contract_address=ev["address"],
                        event_name=ev["event"],
                        args={k: v for k, v in ev["args"].items()},
                        block_number=ev["blockNumber"],
                        block_hash="0x" + ev["blockHash"].hex().removeprefix("0x"),
                        tx_hash="0x" + ev["transactionHash"].hex().removeprefix("0x"),
                        log_index=ev["logIndex"],
                    )
                )
    return time.perf_counter() - t


def bench_indexer(
    engine: sa.Engine, rpc: JsonRpc, deployments: Path, chunk: int
) -> tuple[int, float]:
    indexer = Indexer(engine, rpc, deployments_dir=deployments, confirmations=0, chunk_size=chunk)
    gc.collect()  # start from the same heap as the raw fetch
    t = time.perf_counter()
    result = indexer.run()
    return result.events, time.perf_counter() - t


# The model's UNIQUE (chain_id, tx_hash, log_index), as the migrations name it.
UNIQUE = next(
    c for c in ChainEventRecord.__table__.constraints if isinstance(c, sa.UniqueConstraint)
)


def set_unique(engine: sa.Engine, on: bool) -> None:
    """Add or drop the UNIQUE (chain_id, tx_hash, log_index) constraint (the table is empty)."""
    with engine.begin() as conn:
        conn.execute(sa.schema.DropConstraint(UNIQUE, if_exists=True))
        if on:
            conn.execute(sa.schema.AddConstraint(UNIQUE))
        uniques = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_constraint "
                "WHERE conrelid = 'chain_events'::regclass AND contype = 'u'"
            )
        ).scalar_one()
        assert uniques == int(on), f"{uniques} UNIQUE constraints on chain_events"


def paired(
    engine: sa.Engine,
    rpc: JsonRpc,
    deployments: Path,
    token: str,
    span: tuple[int, int],
    chunk: int,
    passes: int,
    ab_unique: bool,
) -> float:
    """Passes of raw then indexer, back to back; prints the median and range of their ratios
    and returns the median of those as migrated. (With `ab_unique` the constraint may be left
    dropped: the benchmark's database goes next.)"""
    ratios: dict[str, list[float]] = {}
    for i in range(passes):
        variant = "without UNIQUE" if ab_unique and i % 2 else "as migrated"
        truncate(engine)
        if ab_unique:
            set_unique(engine, variant == "as migrated")
        raw_n, raw_t = bench_raw(rpc, token, *span, chunk)
        n, idx_t = bench_indexer(engine, rpc, deployments, chunk)
        assert n == raw_n, (n, raw_n)
        ratios.setdefault(variant, []).append(raw_t / idx_t)
    print()
    print("paired passes (raw, then the indexer at once): indexer x raw per pass")
    for variant, rs in ratios.items():
        rs.sort()
        print(
            f"  {variant:<15} median {statistics.median(rs):.2f}  "
            f"range {rs[0]:.2f}-{rs[-1]:.2f}  n {len(rs)}:  " + " ".join(f"{r:.2f}" for r in rs)
        )
    return statistics.median(ratios["as migrated"])


def truncate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {TABLES} RESTART IDENTITY"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--per-block", type=int, default=500)
    p.add_argument("--chunk", type=int, default=10, help="blocks per eth_getLogs")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--paired", type=int, default=20, help="then N paired raw/indexer passes")
    p.add_argument(
        "--ab-unique",
        action="store_true",
        help="with --paired: every other pass without the UNIQUE (tx_hash, log_index)",
    )
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-indexer-"))
    node = start_anvil(tmp / "anvil.log", extra_args=("--gas-limit", "100000000"))
    db = f"furusato_bench_indexer_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = sa.make_url(PG_ADMIN).set(database=db).render_as_string(hide_password=False)
    try:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = url
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        engine = sa.create_engine(url)
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        rpc = JsonRpc(node.url, timeout=60)
        tx = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "data": artifact("PlainERC20").bytecode, "gas": 3_000_000}
        )
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        token, deployed_at = receipt["contractAddress"], receipt["blockNumber"]
        save_deployments(
            tmp / "deployments",
            Deployments(
                31337,
                {
                    "bench.Token": DeployedContract(
                        "bench.Token", "PlainERC20", token, deployed_at, "0x"
                    )
                },
            ),
        )
        t = time.perf_counter()
        fill(w3, rpc, token, args.blocks, args.per_block)
        print(f"filled {args.blocks * args.per_block} events in {time.perf_counter() - t:.1f} s")
        head = w3.eth.block_number

        raw_n, raw_t, naive_t, idx_n, idx_t = 0, 1e9, 1e9, 0, 1e9
        for _ in range(args.repeat):
            n, el = bench_raw(rpc, token, deployed_at, head, args.chunk)
            raw_n, raw_t = n, min(raw_t, el)
            truncate(engine)
            naive_t = min(naive_t, bench_naive(w3, engine, token, deployed_at, head, args.chunk))
            truncate(engine)
            n, el = bench_indexer(engine, rpc, tmp / "deployments", args.chunk)
            idx_n, idx_t = n, min(idx_t, el)
        assert idx_n == raw_n, (idx_n, raw_n)
        raw_r, naive_r, idx_r = raw_n / raw_t, raw_n / naive_t, idx_n / idx_t
        print()
        print(f"date {dt.date.today()}  nproc {os.cpu_count()}  cpu {cpu_model()}")
        print(
            f"{raw_n} Transfer events in {args.blocks} blocks, {args.chunk} blocks per "
            f"eth_getLogs, best of {args.repeat}"
        )
        print(f"{'path':<34}{'events/s':>10}{'x raw':>8}{'x naive':>9}")
        for name, rate in (
            ("raw eth_getLogs fetch (ceiling)", raw_r),
            ("naive web3 decode + ORM insert", naive_r),
            ("indexer (eth_abi + COPY + handlers)", idx_r),
        ):
            print(f"{name:<34}{rate:>10,.0f}{rate / raw_r:>8.2f}{rate / naive_r:>9.2f}")
        ratio, judged = idx_r / raw_r, "best of each"
        if args.paired:
            span = (deployed_at, head)
            deployments = tmp / "deployments"
            ratio = paired(
                engine, rpc, deployments, token, span, args.chunk, args.paired, args.ab_unique
            )
            judged = "median of the paired passes"
        ok = idx_r >= 5000 and ratio >= 0.6
        print(
            f"targets: >= 5,000 events/s ({idx_r:,.0f}) and >= 0.6x raw ({ratio:.2f}, {judged}): "
            f"{'met' if ok else 'NOT met'}"
        )
        engine.dispose()
    finally:
        node.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
