"""The indexer against a peer: our indexer and Subsquid's on the same ERC-20 Transfers.

    .venv/bin/python -m bench.peer [--blocks 200] [--per-block 500] [--chunk 10]
                                   [--batch-events 10000] [--repeat 3] [--depths 10]

One anvil, one run, the same Transfer range for both (issue 16 §5):

1. Throughput. Our indexer (backend.chain.indexer, in this process, as a worker runs it) and
   the peer (bench/peer/subsquid: @subsquid/evm-processor with @subsquid/typeorm-store on
   PostgreSQL, a separate Node process) each index the token's Transfers from its deployment
   block into a fresh database of their own. Ours is timed from Indexer.run() to its return
   (the last commit); the peer from its spawn to the moment its status row shows the last
   event's block committed, and also from its first log line (start-up, module loading and
   database connection left out), the peer's better figure. The table takes the best pass of
   each; the target is judged on the median of the per-pass ratios (ours, then the peer at once:
   the machine's speed drifts by tens of per cent within minutes).
   Both must hold the same number of events and the same balances, equal to balanceOf on the
   chain for every holder.
2. Reorgs of depth 1..--depths. Both follow the head (ours: Indexer.run() in a loop every
   --poll-ms; the peer: its head poll at the same interval). For each depth d: evm_snapshot,
   d blocks of transfers (branch A) that both index, evm_revert, d + 1 blocks of different
   transfers (branch B, one longer so that a head poll sees a new height); then the time until
   each indexer's head hash is the chain's and its balances equal the chain's; pass/fail.

The peer's finality confirmation (--finality, 20: above it Subsquid keeps hot blocks it can
roll back) is why --finality empty blocks follow the filled ones: every event is final for
the peer, so it takes its batched path, its fastest. A reorg deeper than that window is beyond
the peer (with --finality 5, depth 6 stopped its process with an AssertionError): that is
reported as a failure at once. Needs PostgreSQL (BENCH_PG_ADMIN_URL),
anvil and Node; `npm ci` and the TypeScript build of the peer run on first use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from eth_typing import HexStr
from web3 import Web3

from backend.chain.anvil import start_anvil
from backend.chain.indexer import Indexer, JsonRpc
from backend.chain.registry import DeployedContract, Deployments, artifact, save_deployments
from bench.indexer import PG_ADMIN, ROOT, cpu_model, fill

PEER_DIR = ROOT / "bench" / "peer" / "subsquid"
ZERO = "0x" + "0" * 40
BALANCE_OF = "0x70a08231"
TRANSFER = "0xa9059cbb"
MINT = "0x40c10f19"


# ---------------------------------------------------------------- set-up


def ensure_peer(log: Callable[[str], None] = print) -> None:
    """`npm ci` into bench/peer/subsquid when its node_modules is missing or older than the
    lock file, and `npm run build` (tsc to lib/) when lib/main.js is older than a source."""
    stamp = PEER_DIR / "node_modules" / ".installed"
    locks = [PEER_DIR / "package.json", PEER_DIR / "package-lock.json"]
    if not stamp.exists() or stamp.stat().st_mtime < max(p.stat().st_mtime for p in locks):
        log("installing the peer indexer: npm ci --prefix bench/peer/subsquid")
        npm = ["npm", "ci", "--prefix", str(PEER_DIR), "--no-audit", "--no-fund"]
        subprocess.run([*npm, "--loglevel=error"], check=True)
        stamp.touch()
    main = PEER_DIR / "lib" / "main.js"
    sources = [*(PEER_DIR / "src").rglob("*.ts"), PEER_DIR / "tsconfig.json", stamp]
    if not main.exists() or main.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        log("building the peer indexer: npm run build --prefix bench/peer/subsquid")
        subprocess.run(["npm", "run", "--silent", "--prefix", str(PEER_DIR), "build"], check=True)


class Databases:
    """Fresh PostgreSQL databases for the run, dropped at the end."""

    def __init__(self) -> None:
        self.admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self, prefix: str) -> str:
        name = f"furusato_bench_{prefix}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = sa.make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.names:
            self.names.remove(name)

    def close(self) -> None:
        for name in list(self.names):
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


# ---------------------------------------------------------------- the two indexers


def peer_env(
    db_url: str, rpc_url: str, token: str, from_block: int, finality: int, poll_ms: int
) -> dict[str, str]:
    """The peer's configuration (bench/peer/subsquid/src/main.ts reads it)."""
    u = sa.make_url(db_url)
    env = {
        "DB_URL": f"postgresql://{u.username}@{u.host}:{u.port or 5432}/{u.database}",
        "RPC_URL": rpc_url,
        "TOKEN": token,
        "FROM_BLOCK": str(from_block),
        "FINALITY": str(finality),
        "HEAD_POLL_MS": str(poll_ms),
        "PROMETHEUS_PORT": "0",  # its metrics server on a free port
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    }
    if u.password:
        env["DB_PASS"] = u.password
    return env


@dataclass
class Ours:
    """backend.chain.indexer on its own database; follow() runs it in a loop on a thread."""

    url: str
    rpc_url: str
    deployments: Path
    token: str
    chunk: int
    batch_events: int
    engine: sa.Engine = field(init=False)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = self.url
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        self.engine = sa.create_engine(self.url)

    def indexer(self, rpc: JsonRpc) -> Indexer:
        return Indexer(
            self.engine,
            rpc,
            deployments_dir=self.deployments,
            confirmations=0,
            chunk_size=self.chunk,
            batch_events=self.batch_events,
        )

    def backfill(self, rpc: JsonRpc) -> tuple[int, float]:
        indexer = self.indexer(rpc)
        gc.collect()
        t = time.perf_counter()
        result = indexer.run()
        return result.events, time.perf_counter() - t

    def truncate(self) -> None:
        tables = "chain_events, chain_blocks, chain_cursors, watched_contracts, "
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} chain_token_balances RESTART IDENTITY"))

    def follow(self, poll: float) -> None:
        # Its reorg warnings would interleave with the report (the report counts the reorgs).
        logging.getLogger("backend.chain.indexer").setLevel(logging.ERROR)

        def loop() -> None:
            rpc = JsonRpc(self.rpc_url, timeout=60)
            indexer = self.indexer(rpc)
            while not self._stop.is_set():
                try:
                    indexer.run()
                except Exception as exc:  # noqa: BLE001 - reported, and the loop goes on
                    self.errors.append(exc)
                self._stop.wait(poll)

        self._thread = threading.Thread(target=loop, name="ours-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.engine.dispose()

    def head(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT number, hash FROM chain_blocks ORDER BY number DESC LIMIT 1")
            ).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM chain_events")).scalar_one())

    def balances(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT holder, amount FROM chain_token_balances "
                    "WHERE lower(contract_address) = :t AND amount <> 0"
                ),
                {"t": self.token.lower()},
            )
            return {h.lower(): int(a) for h, a in rows}


@dataclass
class Peer:
    """The Subsquid squid of bench/peer/subsquid as a child process on its own database."""

    url: str
    rpc_url: str
    token: str
    from_block: int
    finality: int
    poll_ms: int
    log_path: Path
    engine: sa.Engine = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        sql = (PEER_DIR / "schema.sql").read_text()
        sql = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
        with self.engine.connect() as conn:
            for stmt in filter(str.strip, sql.split(";")):
                conn.exec_driver_sql(stmt)

    def start(self) -> None:
        env = peer_env(
            self.url, self.rpc_url, self.token, self.from_block, self.finality, self.poll_ms
        )
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                ["node", "lib/main.js"],
                cwd=PEER_DIR,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.engine.dispose()

    def exit_reason(self) -> str:
        """The first line of the error the peer logged last (its process has exited)."""
        for line in reversed(self.log_tail(200).splitlines()):
            m = re.search(r'"stack":"([^"\\]*)', line)
            if m:
                return m[1]
        return f"exit code {self.process.returncode if self.process else None}"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def status(self) -> int:
        """The height of the peer's committed final block (-1 before its first commit)."""
        with self.engine.connect() as conn:
            try:
                return int(
                    conn.exec_driver_sql(
                        "SELECT height FROM squid_processor.status WHERE id = 0"
                    ).scalar_one()
                )
            except sa.exc.SQLAlchemyError:  # not created yet
                return -1

    def head(self) -> tuple[int, str] | None:
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT height, hash FROM squid_processor.hot_block ORDER BY height DESC LIMIT 1"
            ).first()
            if row is None:
                row = conn.exec_driver_sql(
                    "SELECT height, hash FROM squid_processor.status WHERE id = 0"
                ).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM transfer").scalar_one())

    def balances(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, balance FROM account WHERE balance <> 0")
            return {h.lower(): int(b) for h, b in rows}

    def started_at(self) -> float | None:
        """The time (Unix seconds) of the peer's "processing blocks from" log line: its
        processor is configured and its database connected, the indexing starts."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return None
        m = re.search(r'\{"level":\d+,"time":(\d+),[^\n]*processing blocks from', text)
        return None if m is None else int(m[1]) / 1000


# ---------------------------------------------------------------- the chain


def chain_balances(rpc: JsonRpc, token: str, holders: list[str]) -> dict[str, int]:
    """balanceOf at the head of each holder (lowercase addresses), the nonzero ones."""
    out: dict[str, int] = {}
    for i in range(0, len(holders), 200):
        part = holders[i : i + 200]
        calls = [
            (
                "eth_call",
                [{"to": token, "data": BALANCE_OF + h[2:].lower().rjust(64, "0")}, "latest"],
            )
            for h in part
        ]
        for h, v in zip(part, rpc.batch(calls), strict=True):
            if int(v, 16):
                out[h.lower()] = int(v, 16)
    return out


def head(rpc: JsonRpc) -> tuple[int, str]:
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    return int(block["number"], 16), block["hash"]


def branch(
    rpc: JsonRpc, token: str, holders: list[str], minter: str, blocks: int, rng: random.Random
) -> list[str]:
    """`blocks` blocks of 4 transfers from holders to new addresses and one mint to a new
    address each; returns the new addresses."""
    fresh: list[str] = []
    senders = [*holders, minter]
    counts = rpc.batch([("eth_getTransactionCount", [a, "latest"]) for a in senders])
    nonces = {a: int(n, 16) for a, n in zip(senders, counts, strict=True)}
    for _ in range(blocks):
        calls = []
        for j in range(5):
            to = "0x" + rng.randbytes(20).hex()
            fresh.append(to)
            amount = rng.randint(1, 10_000).to_bytes(32, "big").hex()
            target = to[2:].rjust(64, "0")
            if j < 4:
                sender, data = rng.choice(holders), TRANSFER + target + amount
            else:
                sender, data = minter, MINT + target + amount
            tx = {"from": sender, "to": token, "data": data, "gas": hex(200_000)}
            tx["nonce"] = hex(nonces[sender])
            nonces[sender] += 1
            calls.append(("eth_sendTransaction", [tx]))
        rpc.batch(calls)
        rpc.call("anvil_mine", ["0x1"])
    return fresh


def wait_for(cond: Callable[[], bool], timeout: float, every: float = 0.02) -> float | None:
    """Seconds until cond() held (polled every `every` s), or None after `timeout`."""
    t = time.perf_counter()
    while True:
        try:
            if cond():
                return time.perf_counter() - t
        except sa.exc.SQLAlchemyError:
            pass
        if time.perf_counter() - t > timeout:
            return None
        time.sleep(every)


# ---------------------------------------------------------------- the phases


@dataclass
class PeerPass:
    events: int
    wall: float  # spawn to the last event committed
    indexing: float  # its "processing blocks from" line to the last event committed
    progress: str  # its last progress line (every 5 s): ingest rate, mapping rate, items/s


def peer_backfill(peer: Peer, last_block: int, timeout: float) -> PeerPass:
    """Start the peer and wait until its status row has the last event's block committed
    (every event block is final for it: --finality empty blocks follow them)."""
    peer.start()
    t0 = time.time()
    done = wait_for(lambda: peer.status() >= last_block or not peer.alive(), timeout, 0.01)
    end = time.time()
    if done is None or not peer.alive():
        raise RuntimeError(f"the peer did not index to block {last_block}:\n{peer.log_tail()}")
    started = wait_for(lambda: peer.started_at() is not None, 5) is not None and peer.started_at()
    assert started, peer.log_tail()
    lines = re.findall(r'"msg":"([^"]*, rate: [^"]*)"', peer.log_tail(1000))
    return PeerPass(peer.count(), end - t0, end - started, lines[-1] if lines else "")


def compare(
    rpc: JsonRpc, token: str, ours: Ours, peer: Peer, holders: list[str]
) -> tuple[bool, str]:
    """Both hold the chain's balances (balanceOf of every holder either knows and of
    `holders`), the same event count and the same head."""
    mine, theirs = ours.balances(), peer.balances()
    chain = chain_balances(rpc, token, sorted(set(holders) | mine.keys() | theirs.keys()))
    notes = []
    if mine != chain:
        notes.append(f"ours: {len(set(mine.items()) ^ set(chain.items()))} balances differ")
    if theirs != chain:
        notes.append(f"peer: {len(set(theirs.items()) ^ set(chain.items()))} balances differ")
    if ours.count() != peer.count():
        notes.append(f"events: ours {ours.count()}, peer {peer.count()}")
    return not notes, "; ".join(notes) or f"{len(chain)} balances equal balanceOf"


@dataclass
class Converged:
    seconds: float | None  # None: not within the timeout, or wrong when it settled
    detail: str = ""

    def __str__(self) -> str:
        if self.seconds is None:
            return f"FAIL ({self.detail})"
        return f"pass in {self.seconds:.2f} s"


def converge(
    indexers: dict[str, Ours | Peer], block: tuple[int, str], want: dict[str, int], timeout: float
) -> dict[str, Converged]:
    """Seconds until each indexer's head is `block` and its balances are `want`."""
    t0 = time.perf_counter()
    out: dict[str, Converged] = {}
    pending = dict(indexers)
    while pending and time.perf_counter() - t0 < timeout:
        for name, ix in list(pending.items()):
            if isinstance(ix, Peer) and not ix.alive():
                out[name] = Converged(None, f"the peer exited: {ix.exit_reason()}")
                del pending[name]
                continue
            try:
                if ix.head() == block and ix.balances() == want:
                    out[name] = Converged(time.perf_counter() - t0)
                    del pending[name]
            except sa.exc.SQLAlchemyError:
                pass  # the peer's tables in a rollback, or not there yet
        time.sleep(0.02)
    for name, ix in pending.items():
        try:
            at = ix.head()
        except sa.exc.SQLAlchemyError as exc:
            at = exc.__class__.__name__  # type: ignore[assignment]
        out[name] = Converged(None, f"at {at} after {timeout:.0f} s, the chain at {block}")
    return {name: out[name] for name in indexers}


def reorgs(
    rpc: JsonRpc,
    token: str,
    indexers: dict[str, Ours | Peer],
    holders: list[str],
    minter: str,
    depths: range,
    timeout: float,
    base: tuple[int, int],
) -> list[tuple[int, dict[str, Converged]]]:
    """For each depth d: branch A of d blocks, indexed by both; evm_revert; branch B of d + 1
    blocks; how long each indexer takes from B's last block to B's head and balances, and
    whether it then holds the chain's events (`base`: the last filled block and its events)."""
    rng = random.Random(16)
    rpc.call("evm_setAutomine", [False])  # one block per anvil_mine, with its 5 transactions
    seen: set[str] = set(holders)
    out = []
    for d in depths:
        snap = rpc.call("evm_snapshot", [])
        seen.update(branch(rpc, token, holders, minter, d, rng))
        a_head = head(rpc)
        for name, c in converge(
            indexers, a_head, chain_balances(rpc, token, sorted(seen)), timeout
        ).items():
            if c.seconds is None:
                print(f"  depth {d}: {name} did not index branch A: {c.detail}")
        assert rpc.call("evm_revert", [snap]) is True
        seen.update(branch(rpc, token, holders, minter, d + 1, rng))
        b_head = head(rpc)
        results = converge(indexers, b_head, chain_balances(rpc, token, sorted(seen)), timeout)
        expected = base[1] + len(rpc.get_logs([token], base[0] + 1, b_head[0]))
        for name, ix in indexers.items():
            if results[name].seconds is not None and (n := ix.count()) != expected:
                results[name] = Converged(None, f"{n} events, {expected} on the chain")
        out.append((d, results))
        print(f"  depth {d:>2}: " + ", ".join(f"{n} {c}" for n, c in results.items()), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", type=int, default=200)
    p.add_argument("--per-block", type=int, default=500)
    p.add_argument("--chunk", type=int, default=10, help="our blocks per eth_getLogs")
    p.add_argument("--batch-events", type=int, default=10_000, help="our events per commit")
    p.add_argument("--repeat", type=int, default=3, help="throughput passes of each (best)")
    p.add_argument("--depths", type=int, default=10, help="reorgs of depth 1..N (0: none)")
    p.add_argument("--finality", type=int, default=20, help="the peer's finality confirmation")
    p.add_argument("--poll-ms", type=int, default=200, help="both indexers' head poll")
    p.add_argument("--timeout", type=float, default=60.0, help="per reorg / per backfill x 10")
    args = p.parse_args(argv)

    ensure_peer()
    tmp = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    node = start_anvil(tmp / "anvil.log", extra_args=("--gas-limit", "100000000"))
    dbs = Databases()
    ours: Ours | None = None
    peer: Peer | None = None
    try:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
        rpc = JsonRpc(node.url, timeout=60)
        accounts = [str(Web3.to_checksum_address(a)) for a in rpc.call("eth_accounts", [])]
        tx = w3.eth.send_transaction(
            {"from": accounts[0], "data": HexStr(artifact("PlainERC20").bytecode), "gas": 3_000_000}
        )
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        token, deployed_at = str(receipt["contractAddress"]), receipt["blockNumber"]
        contract = DeployedContract("bench.Token", "PlainERC20", token, deployed_at, "0x")
        save_deployments(tmp / "deployments", Deployments(31337, {"bench.Token": contract}))
        t = time.perf_counter()
        fill(w3, rpc, token, args.blocks, args.per_block)
        n_events = args.blocks * args.per_block
        last_block = w3.eth.block_number
        rpc.call("anvil_mine", [hex(args.finality)])
        print(f"filled {n_events:,} Transfer events in {time.perf_counter() - t:.1f} s")
        holders = [a.lower() for a in accounts[1:10]]

        ours = Ours(
            dbs.create("ours"),
            node.url,
            tmp / "deployments",
            token,
            args.chunk,
            args.batch_events,
        )
        ours_best, peer_best = 1e9, PeerPass(0, 1e9, 1e9, "")
        ratios: list[float] = []  # ours / peer per pass (the two run back to back)
        for i in range(args.repeat):
            ours.truncate()
            n, el = ours.backfill(rpc)
            assert n == n_events, (n, n_events)
            ours_best = min(ours_best, el)
            if peer is not None:
                peer.stop()
                dbs.drop(peer.url)
            peer = Peer(
                dbs.create("peer"),
                node.url,
                token,
                deployed_at,
                args.finality,
                args.poll_ms,
                tmp / f"peer-{i}.log",
            )
            got = peer_backfill(peer, last_block, args.timeout * 10)
            assert got.events == n_events, (got.events, n_events)
            if got.indexing < peer_best.indexing:
                peer_best = got
            ratios.append(got.indexing / el)
            print(
                f"pass {i + 1}: ours {n_events / el:,.0f} events/s ({el:.2f} s); peer "
                f"{n_events / got.indexing:,.0f} events/s ({got.indexing:.2f} s, "
                f"{got.wall:.2f} s from its spawn)\n  the peer's last progress line: "
                f"{got.progress}",
                flush=True,
            )
        assert peer is not None
        same, detail = compare(rpc, token, ours, peer, holders)
        ours_r = n_events / ours_best
        peer_r, peer_wall_r = n_events / peer_best.indexing, n_events / peer_best.wall
        print()
        print(f"date {dt.date.today()}  nproc {os.cpu_count()}  cpu {cpu_model()}")
        print(
            f"{n_events:,} Transfer events in {args.blocks} blocks, best of {args.repeat}; "
            f"ours: {args.chunk} blocks per eth_getLogs, {args.batch_events:,} events per "
            f"commit; peer: Subsquid evm-processor 1.27.3 + typeorm-store 1.5.1, finality "
            f"{args.finality}"
        )
        print(f"{'indexer':<44}{'events/s':>10}{'ours x':>8}")
        rows = (
            ("ours (Indexer.run, start to last commit)", ours_r),
            ("peer (its first log line to last commit)", peer_r),
            ("peer (spawn to last commit)", peer_wall_r),
        )
        for name, rate in rows:
            print(f"{name:<44}{rate:>10,.0f}{ours_r / rate:>8.2f}")
        print(f"same events and balances: {'yes' if same else 'NO'} ({detail})")
        ratio = statistics.median(ratios)
        print(
            "ours x the peer per pass (each pair back to back): "
            + " ".join(f"{r:.2f}" for r in ratios)
            + f"; median {ratio:.2f}"
        )
        print(
            f"target ours >= 1.0x the peer, on that median: {ratio:.2f}x, "
            f"{'met' if ratio >= 1 else 'NOT met'}"
        )

        results = []
        if args.depths:
            print()
            print(
                f"reorgs: both follow the head (poll {args.poll_ms} ms); depth d = d blocks "
                f"replaced by d + 1 others (5 transfers a block)"
            )
            peer_head = head(rpc)
            if wait_for(lambda: peer.head() == peer_head, args.timeout) is None:
                raise RuntimeError(f"the peer did not reach the head:\n{peer.log_tail()}")
            ours.follow(args.poll_ms / 1000)
            results = reorgs(
                rpc,
                token,
                {"ours": ours, "peer": peer},
                holders,
                accounts[0],
                range(1, args.depths + 1),
                args.timeout,
                (last_block, n_events),
            )
            if ours.errors:
                print(f"our follower raised {len(ours.errors)} times: {ours.errors[0]!r}")
            if not peer.alive():
                print(f"the peer exited; its log ends:\n{peer.log_tail(5)}")
        failed = [d for d, r in results if any(c.seconds is None for c in r.values())]
        return 1 if not same or failed else 0
    finally:
        if ours is not None:
            ours.stop()
        if peer is not None:
            peer.stop()
        node.stop()
        dbs.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
