"""Start and stop a local anvil node (the dev chain for `make run`, tests and benchmarks).

anvil logs every call: it always writes to a file, never to an unread pipe (a full pipe blocks
anvil and web3 then times out after 30 s).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANVIL_BIN = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# anvil's default mnemonic: its accounts are public test keys, funded with 10,000 ETH each.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    # accounts 10-19 (anvil starts with --accounts 26): one per platform role key on a dev
    # chain (backend/chain/role_keys.py DEV_ROLE_KEYS)
    "0xf214f2b2cd398c806f84e317254e0f0b801d0643303237d97a22a48e01628897",
    "0x701b615bbdfb9de65240bc28bd21bbc0d996645a3dd57e7b12bc2bdf6f192c82",
    "0xa267530f49f8280200edf313ee7af6b827f2a8bce2897751d06a843f644967b1",
    "0x47c99abed3324a2707c28affff1267e45918ec8c3f20b8aa892e8b065d2942dd",
    "0xc526ee95bf44d8fc405a158bb884d9d1238d99f0612e9f33d006bb0789009aaa",
    "0x8166f546bab6da521a8369cab06c5d2b9e46670292d85c875ee9ec20e84ffb61",
    "0xea6c44ac03bff858b476bba40716402b03e41b8e97e276d1baec7c37d42484a0",
    "0x689af8efa8c651a91ad287602527f3af2fe9f6501a7ac4b061667b5a93e037fd",
    "0xde9be858da4a475276426320d5e9262ecfc3ba460bfac56360bfa6c4c28b4ee0",
    "0xdf57089febbacf7ba0bc227dafbffa9fc08a93fdc68e1e42411a14efcf23656e",
    # accounts 20-25: room for the role keys the town console adds (DEV_ROLE_KEYS takes
    # 10 + the role's index in ROLES, so ROLES may grow to 16 names)
    "0xeaa861a9a01391ed3d587d8a5a84ca56ee277629a8b02c22093a419bf240e65d",
    "0xc511b2aa70776d4ff1d376e8537903dae36896132c90b91d52c1dfbae267cd8b",
    "0x224b7eb7449992aac96d631d9677f7bf5888245eef6d6eeda31e62d2f29a83e4",
    "0x4624e0802698b9769f5bdb260a3777fbd4941ad2901f5966b854f953497eec1b",
    "0x375ad145df13ed97f8ca8e27bb21ebf2a3819e9e0a06509a812db377e533def7",
    "0x18743e59419b01d1d846d97ea070b5a3368a3e7f6f0242cf497e1baac6972427",
)
DEV_ACCOUNTS = len(DEV_KEYS)
_LISTENING = re.compile(r"Listening on (?P<host>[\d.]+):(?P<port>\d+)")


class AnvilError(RuntimeError):
    """anvil could not be started."""


@dataclass
class AnvilNode:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    chain_id: int = 31337
    keys: tuple[str, ...] = field(default=DEV_KEYS)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def start_anvil(
    log_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    chain_id: int = 31337,
    block_time: float | None = None,
    state_path: Path | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 10.0,
) -> AnvilNode:
    """Start anvil and wait until it listens. `port=0` lets the OS pick a free port.

    `state_path` makes anvil load its state from that file at start and dump it there on exit,
    so that `make run` keeps its chain between runs.
    """
    if not ANVIL_BIN.exists():
        raise AnvilError(f"anvil not found at {ANVIL_BIN}; run `make setup`")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(ANVIL_BIN),
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        str(DEV_ACCOUNTS),
        "--hardfork",
        "prague",
        # anvil keeps the state of the last 500 blocks in memory and, by default, writes every
        # older one to ~/.foundry/anvil/tmp, never removed once anvil is stopped: one test run
        # left 9.5 GB there, and a machine's disk filled up over a few runs. The app reads
        # state only near the head (reconcile at the indexed block, a revert replayed at its
        # block - 1), so nothing is written.
        "--max-persisted-states",
        "0",
    ]
    if block_time:
        cmd += ["--block-time", str(block_time)]
    if state_path is not None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--state", str(state_path)]
    cmd += list(extra_args)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
    start_offset = log.tell()
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AnvilError(f"anvil exited with {proc.returncode}; see {log_path}")
        with open(log_path, "rb") as f:
            f.seek(start_offset)
            m = _LISTENING.search(f.read().decode(errors="replace"))
        if m:
            return AnvilNode(proc, m["host"], int(m["port"]), log_path, chain_id)
        time.sleep(0.02)
    proc.kill()
    raise AnvilError(f"anvil did not listen within {timeout} s; see {log_path}")
