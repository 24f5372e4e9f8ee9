"""Relayer throughput and a soak with injected failures, on a private anvil and PostgreSQL.

    .venv/bin/python -m bench.relayer                 # quick: 1,000 requests per phase, soak 2,000
    .venv/bin/python -m bench.relayer --soak 10000    # the full soak

Phases (each on fresh forward requests, users signing with their own keys):

1. raw: the relayer's execute() transactions pre-signed, sent in JSON-RPC batches of 100.
2. outbox, backlog: requests enqueued first, then one sender per relayer key drains them
   (send rate = "submitted from one key"), then until all are confirmed. 1 key and 4 keys.
3. outbox, end to end: requests submitted one commit each while the workers run.
4. soak: worker kills, RPC timeouts, "already known" and "nonce too low" injected; at the end
   every nonce of every sender is used exactly once and every request had exactly one effect.

Ratios are printed against the raw rate measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from eth_account import Account
from web3 import Web3

from backend import create_app
from backend.chain.anvil import DEV_KEYS, start_anvil
from backend.chain.deploy import ProgrammeSpec, TownSpec, deploy_platform
from backend.chain.forwarder import (
    ForwardRequest,
    LocalSigner,
    encode_call,
    execute_calldata,
    relay_gas_limit,
    sign_request,
)
from backend.chain.outbox import (
    ContractCall,
    OutboxService,
    RpcClient,
    RpcError,
    RpcUnavailable,
    Sender,
)
from backend.chain.outbox_models import OutboxSender, OutboxTx
from backend.chain.registry import artifact
from backend.chain.role_keys import DEV_ROLE_KEYS
from backend.config import Settings
from backend.core.db import get_db

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
POINTS = "towns.sarabetsu.RegionPoints"
SINK = "0x000000000000000000000000000000000000bEEF"
RELAYER_KEYS = DEV_KEYS[5:9]
ISSUER_KEY = DEV_ROLE_KEYS["issuer"]
RECEIPT_POLL_SECONDS = 0.25


class KillWorker(BaseException):
    """An injected crash: the worker dies wherever it is (its DB transaction is lost)."""


# ---------------------------------------------------------------------------- setup


@dataclass
class Env:
    w3: Web3
    url: str
    tmp: Path
    deployments_dir: Path
    pg_url: str
    db_name: str
    users: list[LocalSigner]
    gas: int


def _pg_create() -> tuple[str, str]:
    name = f"furusato_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    return name, url


def _pg_drop(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "TRUNCATE outbox_txs, outbox_attempts, outbox_tx_events, outbox_senders,"
                " outbox_forwarder_nonces, outbox_gas_spend, outbox_alerts RESTART IDENTITY CASCADE"
            )
        )
    engine.dispose()


def setup(tmp: Path, n_users: int) -> tuple[Env, Any]:
    node = start_anvil(
        tmp / "anvil.log",
        block_time=0.5,
        extra_args=("--gas-limit", "1000000000"),
    )
    w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60}))
    deployments_dir = tmp / "deployments"
    deployed = deploy_platform(
        w3,
        DEV_KEYS[0],
        deployments_dir,
        [TownSpec("sarabetsu", "Sarabetsu Points", "SRB", programmes=(ProgrammeSpec(1, 0),))],
    )
    pts = w3.eth.contract(address=deployed.address(POINTS), abi=artifact("RegionPoints").abi)
    issuer = Account.from_key(ISSUER_KEY).address  # the role key that issues (ADR 0008)
    users = [LocalSigner(Account.create().key) for _ in range(n_users)]
    for i in range(0, n_users, 200):
        chunk = [u.address for u in users[i : i + 200]]
        h = pts.functions.issueBatch(chunk, [10**12] * len(chunk), 1, "bench").transact(
            {"from": issuer, "gas": 30_000_000}
        )
        w3.eth.wait_for_transaction_receipt(h)
    db_name, pg_url = _pg_create()
    data = encode_call("RegionPoints", "transfer", [SINK, 1])
    est = w3.eth.estimate_gas({"from": users[0].address, "to": pts.address, "data": data})
    env = Env(w3, node.url, tmp, deployments_dir, pg_url, db_name, users, int(est * 1.25) + 5000)
    return env, node


def make_app(env: Env, relayer_keys: list[str]) -> Any:
    settings = Settings(
        instance_path=env.tmp / "instance",
        secret_key="bench",  # noqa: S106
        database_url=env.pg_url,
        rpc_url=env.url,
        rpc_timeout=30.0,
        deployments_dir=env.deployments_dir,
        confirmations=0,
        relayer_private_keys=",".join(relayer_keys),
        role_private_keys=f"issuer={ISSUER_KEY}",
        relayer_low_balance_wei=0,
    )
    return create_app(settings)


def _service(app: Any, rpc: RpcClient | None = None) -> OutboxService:
    svc = OutboxService(app.extensions["settings"], rpc=rpc)
    svc.auto_dispatch = False
    return svc


# ---------------------------------------------------------------------------- workers


class Workers:
    """One sender thread per relayer key and one receipt thread, like Celery workers would be.

    `make_service` builds a fresh service (a restarted worker process) after an injected kill.
    """

    def __init__(self, app: Any, senders: list[str], make_service: Callable[[], OutboxService]):
        self.app = app
        self.senders = senders
        self.make_service = make_service
        self.stop = threading.Event()
        self.kills = 0
        self.first_sent_at: float | None = None
        self.threads = [
            threading.Thread(target=self._send_loop, args=(s,), daemon=True) for s in senders
        ] + [
            threading.Thread(target=self._receipt_loop, daemon=True),
            threading.Thread(target=self._bump_loop, daemon=True),
        ]

    def __enter__(self) -> Workers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _loop(self, step: Callable[[OutboxService, Any], bool], pause: float) -> None:
        svc = self.make_service()
        while not self.stop.is_set():
            with self.app.app_context():
                session = get_db().session
                try:
                    busy = step(svc, session)
                except KillWorker:
                    session.rollback()
                    self.kills += 1
                    svc = self.make_service()  # a new process: reconciles on first use
                    continue
                except RpcUnavailable:
                    session.rollback()
                    busy = False
            if not busy:
                time.sleep(pause)

    def _send_loop(self, sender: str) -> None:
        def step(svc: OutboxService, session: Any) -> bool:
            report = svc.send_pending(session, sender)
            if report.sent and self.first_sent_at is None:
                self.first_sent_at = time.perf_counter()
            return report.sent > 0

        self._loop(step, 0.02)

    def _receipt_loop(self) -> None:
        # Receipts change once per block (0.5 s here): poll twice per block, as a beat task
        # would (every 2 s in production), not in a tight loop that competes with the sender.
        def step(svc: OutboxService, session: Any) -> bool:
            svc.check_receipts(session, limit=5000)
            return False

        self._loop(step, RECEIPT_POLL_SECONDS)

    def _bump_loop(self) -> None:
        self._loop(lambda svc, session: bool(svc.bump_stuck(session, stuck_blocks=6)), 1.0)


def _counts(app: Any) -> Counter[str]:
    with app.app_context():
        session = get_db().session
        rows = session.execute(sa.select(OutboxTx.state, sa.func.count()).group_by(OutboxTx.state))
        out = Counter({state: n for state, n in rows})
        session.rollback()
        return out


def _settled(app: Any) -> int:
    c = _counts(app)
    return c["confirmed"] + c["reverted"] + c["cancelled"] + c["failed"]


def _wait_until(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish in time")
        time.sleep(0.05)


def _enqueue(
    app: Any, svc: OutboxService, env: Env, n: int, tag: str, users: list[LocalSigner]
) -> None:
    with app.app_context():
        session = get_db().session
        for i in range(n):
            svc.enqueue(
                session,
                ContractCall(POINTS, "transfer", [SINK, 1], gas=env.gas),
                sender=Sender.user(users[i % len(users)], town_id=1, user_id=i % len(users)),
                key=f"{tag}-{i}",
            )
            session.commit()


# ---------------------------------------------------------------------------- phases


def bench_raw(env: Env, n: int) -> float:
    """Pre-signed execute() transactions from one relayer key, sent raw in batches of 100."""
    rpc = RpcClient(env.url, timeout=60)
    chain_id = int(rpc.call("eth_chainId", []), 16)
    deployments = __import__("backend.chain.registry", fromlist=["load_deployments"])
    d = deployments.load_deployments(env.deployments_dir, chain_id)
    forwarder = d.address("FurusatoForwarder")
    target = d.address(POINTS)
    relayer = Account.from_key(RELAYER_KEYS[3])
    users = env.users
    nonces: dict[str, int] = {}
    for u in users:
        data = "0x7ecebe00" + u.address.lower()[2:].rjust(64, "0")
        nonces[u.address] = int(
            rpc.call("eth_call", [{"to": forwarder, "data": data}, "latest"]), 16
        )
    start_nonce = int(rpc.call("eth_getTransactionCount", [relayer.address, "pending"]), 16)
    block = rpc.call("eth_getBlockByNumber", ["latest", False])
    fee = int(block["baseFeePerGas"], 16) * 2 + 10**9
    data = encode_call("RegionPoints", "transfer", [SINK, 1])
    raws = []
    deadline = int(time.time()) + 3600
    for i in range(n):
        u = users[i % len(users)]
        req = ForwardRequest(u.address, target, 0, env.gas, nonces[u.address], deadline, data)
        nonces[u.address] += 1
        req = sign_request(u, req, chain_id, forwarder)
        signed = relayer.sign_transaction(
            {
                "type": 2,
                "chainId": chain_id,
                "nonce": start_nonce + i,
                "to": forwarder,
                "value": 0,
                "data": execute_calldata(req),
                "gas": relay_gas_limit(req),
                "maxFeePerGas": fee,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        raws.append("0x" + bytes(signed.raw_transaction).hex())
    t0 = time.perf_counter()
    for i in range(0, n, 100):
        answers = rpc.batch([("eth_sendRawTransaction", [r]) for r in raws[i : i + 100]])
        bad = [a for a in answers if isinstance(a, RpcError)]
        if bad:
            raise RuntimeError(f"raw send failed: {bad[0]}")
    sent = time.perf_counter() - t0

    def mined() -> bool:
        count = int(rpc.call("eth_getTransactionCount", [relayer.address, "latest"]), 16)
        return count >= start_nonce + n

    _wait_until(mined, 300)
    total = time.perf_counter() - t0
    print(f"  raw      : {n} pre-signed txs sent in {sent:.2f} s = {n / sent:,.0f} tx/s; "
          f"confirmed after {total:.2f} s = {n / total:,.0f} tx/s")  # fmt: skip
    return n / sent


def bench_outbox(env: Env, n: int, keys: list[str], label: str) -> dict[str, float]:
    _truncate(env.pg_url)
    app = make_app(env, keys)
    senders = [Account.from_key(k).address for k in keys]
    svc = _service(app)
    # 2a. a backlog drained by the workers
    t0 = time.perf_counter()
    _enqueue(app, svc, env, n, f"{label}-backlog", env.users)
    submit = time.perf_counter() - t0
    workers = Workers(app, senders, lambda: _service(app))
    t1 = time.perf_counter()
    with workers:
        _wait_until(lambda: _counts(app)["queued"] == 0, 300)
        drained = time.perf_counter() - t1
        _wait_until(lambda: _settled(app) == n, 300)
        confirmed = time.perf_counter() - t1
        states = dict(_counts(app))
    # 2b. end to end: submitted while the workers run
    _truncate(env.pg_url)
    app = make_app(env, keys)
    svc = _service(app)
    with Workers(app, senders, lambda: _service(app)):
        t2 = time.perf_counter()
        _enqueue(app, svc, env, n, f"{label}-e2e", env.users)
        _wait_until(lambda: _settled(app) == n, 300)
        e2e = time.perf_counter() - t2
        states_e2e = dict(_counts(app))
    out = {
        "submit": n / submit,
        "send": n / drained,
        "confirm": n / confirmed,
        "e2e": n / e2e,
    }
    print(
        f"  {label:<9}: enqueue+commit {out['submit']:,.0f} req/s (1 thread); backlog sent "
        f"{out['send']:,.0f} tx/s, confirmed {out['confirm']:,.0f} tx/s; "
        f"submit->confirmed concurrently {out['e2e']:,.0f} req/s\n"
        f"             final states: backlog {states}, end to end {states_e2e}"
    )
    return out


class FlakyRpc(RpcClient):
    """Injects RPC timeouts (before or after the node acted), "already known" and
    "nonce too low" answers for transactions the node did accept, and worker kills."""

    def __init__(self, url: str, rate: float, rng: random.Random, stats: Counter[str]) -> None:
        super().__init__(url, timeout=30)
        self.rate = rate
        self.rng = rng
        self.stats = stats

    def _roll(self) -> bool:
        return self.rng.random() < self.rate

    def call(self, method: str, params: list[Any]) -> Any:
        if self._roll():
            self.stats["timeout"] += 1
            raise RpcUnavailable("injected timeout")
        return super().call(method, params)

    def batch(self, calls: Any) -> list[Any]:
        sending = any(m == "eth_sendRawTransaction" for m, _ in calls)
        if sending and self._roll():
            self.stats["kill_before_send"] += 1
            raise KillWorker
        if self._roll():
            self.stats["timeout"] += 1
            raise RpcUnavailable("injected timeout before the node acted")
        answers = super().batch(calls)
        if not sending:
            return answers
        roll = self.rng.random()
        if roll < self.rate:
            self.stats["timeout_after_send"] += 1
            raise RpcUnavailable("injected timeout after the node acted")
        if roll < 2 * self.rate:
            self.stats["kill_after_send"] += 1
            raise KillWorker
        if roll < 3 * self.rate:
            self.stats["already_known"] += 1
            answers = [
                RpcError(-32000, "already known") if isinstance(a, str) else a for a in answers
            ]
        elif roll < 4 * self.rate:
            super().call("anvil_mine", ["0x1"])  # now the node really says nonce too low
            self.stats["nonce_too_low"] += 1
            answers = [
                RpcError(-32000, "nonce too low") if isinstance(a, str) else a for a in answers
            ]
        return answers


def soak(env: Env, n: int, keys: list[str], rate: float = 0.03) -> dict[str, Any]:
    _truncate(env.pg_url)
    app = make_app(env, keys)
    rng = random.Random(20261123)
    stats: Counter[str] = Counter()
    lock = threading.Lock()
    w3 = env.w3
    d = __import__("backend.chain.registry", fromlist=["load_deployments"]).load_deployments(
        env.deployments_dir, w3.eth.chain_id
    )
    pts = w3.eth.contract(address=d.address(POINTS), abi=artifact("RegionPoints").abi)
    fwd = w3.eth.contract(
        address=d.address("FurusatoForwarder"), abi=artifact("FurusatoForwarder").abi
    )
    users = env.users
    sink_before = pts.functions.balanceOf(SINK).call()
    issued_before = pts.functions.totalIssued().call()
    fwd_before = {u.address: fwd.functions.nonces(u.address).call() for u in users}
    senders = [Account.from_key(k).address for k in keys] + [Account.from_key(ISSUER_KEY).address]
    chain_before = {s: w3.eth.get_transaction_count(s) for s in senders}

    def make_service() -> OutboxService:
        with lock:
            seed = rng.random()
        return _service(app, FlakyRpc(env.url, rate, random.Random(seed), stats))

    svc = _service(app)
    t0 = time.perf_counter()
    issues = 0
    with Workers(app, senders, make_service) as workers:
        with app.app_context():
            session = get_db().session
            for i in range(n):
                if i % 10 == 9:  # an admin action: a duplicate would show in totalIssued
                    svc.enqueue(
                        session,
                        ContractCall(POINTS, "issue", [SINK, 7, 1, "soak"]),
                        sender=Sender.role("issuer"),
                        key=f"soak-issue-{i}",
                    )
                    issues += 1
                else:
                    svc.enqueue(
                        session,
                        ContractCall(POINTS, "transfer", [SINK, 1], gas=env.gas),
                        sender=Sender.user(users[i % len(users)]),
                        key=f"soak-{i}",
                    )
                session.commit()

        def done() -> bool:
            c = _counts(app)
            return c["confirmed"] + c["reverted"] + c["cancelled"] + c["failed"] >= sum(c.values())

        _wait_until(done, 900)
        elapsed = time.perf_counter() - t0
        kills = workers.kills
    counts = _counts(app)
    # Zero nonce gaps: every sender's chain nonce equals the DB's, and the rows that consumed
    # nonces (call, re-price or no-op) hold each nonce in between exactly once.
    gaps = 0
    dup_nonces = 0
    with app.app_context():
        session = get_db().session
        for s in senders:
            row = session.get(OutboxSender, s)
            used = [
                t.nonce
                for t in session.scalars(
                    sa.select(OutboxTx).where(
                        OutboxTx.sender_address == s,
                        OutboxTx.state.in_(["confirmed", "reverted", "cancelled"]),
                    )
                )
            ]
            chain_count = w3.eth.get_transaction_count(s)
            expected = set(range(chain_before[s], chain_count))
            gaps += len(expected - set(used))
            dup_nonces += len(used) - len(set(used))
            if row is not None and row.next_nonce != chain_count:
                gaps += abs(row.next_nonce - chain_count)
        session.rollback()
    transfers = n - issues
    sink_delta = pts.functions.balanceOf(SINK).call() - sink_before
    issued_delta = pts.functions.totalIssued().call() - issued_before
    fwd_delta = sum(fwd.functions.nonces(u.address).call() - fwd_before[u.address] for u in users)
    duplicated = (
        (sink_delta != transfers + 7 * issues)
        + (issued_delta != 7 * issues)
        + (fwd_delta != transfers)
    )
    result = {
        "requests": n,
        "seconds": elapsed,
        "states": dict(counts),
        "injected": dict(stats),
        "worker_kills": kills,
        "nonce_gaps": gaps,
        "duplicate_nonces": dup_nonces,
        "duplicated_effects": int(duplicated),
    }
    print(
        f"  soak     : {n} requests ({issues} admin issues) in {elapsed:.1f} s, "
        f"states {dict(counts)}\n             injected {dict(stats)}\n"
        f"             nonce gaps {gaps}, duplicate nonces {dup_nonces}, "
        f"effects: sink +{sink_delta} (expected {transfers + 7 * issues}), "
        f"totalIssued +{issued_delta} (expected {7 * issues}), forwarder nonces +{fwd_delta} "
        f"(expected {transfers}) -> duplicated effects {int(duplicated)}"
    )
    return result


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()  # noqa: S607
    return f"{nproc} CPUs, {cpu}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="relayer throughput and soak")
    parser.add_argument("--requests", type=int, default=1000, help="requests per phase")
    parser.add_argument("--soak", type=int, default=2000, help="soak requests (0: skip)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.03)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-relayer-"))
    env, node = setup(tmp, args.users)
    try:
        print(f"machine: {_machine()}; date {time.strftime('%Y-%m-%d')}")
        print(f"anvil interval mining 0.5 s; {args.users} users; inner gas {env.gas}")
        raw = bench_raw(env, args.requests)
        one = bench_outbox(env, args.requests, list(RELAYER_KEYS[:1]), "1 key")
        four = bench_outbox(env, args.requests, list(RELAYER_KEYS), "4 keys")
        print("ratios (against raw pre-signed sends in the same run):")
        for label, r in (("1 key", one), ("4 keys", four)):
            print(
                f"  {label:<7}: backlog send {r['send'] / raw:.2f}x, confirmed "
                f"{r['confirm'] / raw:.2f}x, end to end {r['e2e'] / raw:.2f}x"
            )
        print(f"  4 keys / 1 key backlog send: {four['send'] / one['send']:.2f}x")
        if args.soak:
            res = soak(env, args.soak, list(RELAYER_KEYS), args.fault_rate)
            ok = res["nonce_gaps"] == 0 and res["duplicated_effects"] == 0
            print("soak: OK" if ok else "soak: FAILED")
            if not ok:
                return 1
    finally:
        node.stop()
        _pg_drop(env.db_name)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
