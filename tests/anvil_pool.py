"""anvil's automine can leave a transaction in its pool, unmined until another transaction
arrives (foundry-rs/foundry#10122: "block mining misses ready transactions"; it is still there
in anvil 1.7.1). Seen in a full run: a collection's five set-up calls, sent as one batch, went
into four blocks of one transaction each; the fifth stayed pending for the 90 s the journey
waited, and the collection stayed "setting up". On a real chain the next block takes such a
transaction; on a test chain no block comes unless a transaction does.

The miss has two forms, and `StuckPool` undoes both once a transaction has waited
`STUCK_AFTER` seconds with automine on (anvil's own mining takes milliseconds, so one that waits
that long is stuck):

- a transaction left "pending" (ready): a block mined by hand (evm_mine) takes it, as a real
  chain's next block would;
- a transaction left "queued" although nothing is missing before it: its nonce is the account's
  next one, but the pool still waits for the nonce before it, which was mined while the
  transaction arrived (the race in anvil's pool). No block takes it (evm_mine leaves it where it
  is), so its sender's transactions are taken out of the pool and sent again, byte for byte
  (anvil_removePoolTransactions, eth_sendRawTransaction): anvil then sees them as ready, as a
  real node's pool would, and automine mines them. A CI run of 2026-12-05 most likely hung
  here: a town's set-up waited five minutes for a transaction that never came (its output did
  not show the pool). anvil_setNonce puts a transaction in this state on demand, for the tests.

Transactions queued behind a real nonce gap are left alone: no block may take them. With
automine off the pool is the test's, and is left alone. Mining or re-sending changes nothing
else: automine would have mined the same transactions anyway. `MinesMissed` looks every half
second, in a thread, while real workers or beat tickers drive the chain (tests/conftest.py
BeatTicker, tests/webhooks/workers.py Beat, the multi-process test); `wait_until_mined` looks
while it waits."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from backend.chain.errors import ChainError, RpcError
from backend.chain.outbox_recovery import recover_reorged
from backend.chain.rpc import JsonRpc

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from web3 import Web3

    from backend.chain.outbox import OutboxService

log = logging.getLogger(__name__)

STUCK_AFTER = 1.0  # seconds a transaction may wait before it counts as missed

Call = Callable[[str, list[Any]], Any]


class StuckPool:
    """Mines, or puts back into the pool, the transactions anvil's automine left behind."""

    def __init__(self, call: Call, stuck_after: float = STUCK_AFTER) -> None:
        self.call = call
        self.stuck_after = stuck_after
        self.first_seen: dict[str, float] = {}  # missed-looking hash -> when it was first seen
        self.mined = 0  # blocks mined by hand, for the tests of this helper
        self.resent = 0  # transactions put back into the pool, for the tests of this helper

    def pending(self) -> set[str]:
        """The hashes of the pool's ready transactions (not the queued ones behind a gap)."""
        return _ready(self.call("txpool_content", []))

    def settled(self) -> bool:
        """Nothing in the pool that a block should take: no ready transaction, and none
        queued for nothing (those behind a real nonce gap may stay)."""
        ready, stranded = self._look()
        return not ready and not stranded

    def settle_once(self) -> bool:
        """One look at the pool, automine on: True when it is settled; otherwise what has
        waited long enough is mined or sent again (as `check`), and False."""
        ready, stranded = self._look()
        if not ready and not stranded:
            return True
        self._act(ready, stranded)
        return False

    def _look(self) -> tuple[set[str], dict[str, dict[int, str]]]:
        """The pool's ready transactions, and those queued for nothing, from one read."""
        content = self.call("txpool_content", [])
        return _ready(content), self.waiting_for_nothing(content)

    def waiting_for_nothing(self, content: dict[str, Any]) -> dict[str, dict[int, str]]:
        """The queued transactions, by sender and nonce, of the senders whose lowest queued
        nonce is the account's next one: nothing is missing before them."""
        out = {}
        for sender, by_nonce in content["queued"].items():
            txs = {int(n): str(tx["hash"]) for n, tx in by_nonce.items()}
            if min(txs) == int(self.call("eth_getTransactionCount", [sender, "latest"]), 16):
                out[sender] = txs
        return out

    def check(self) -> bool:
        """Look once; True when a missed transaction was found and mined or sent again."""
        if not self.call("anvil_getAutomine", []):
            self.first_seen.clear()
            return False
        return self._act(*self._look())

    def _act(self, ready: set[str], stranded: dict[str, dict[int, str]]) -> bool:
        now = time.monotonic()
        seen = ready | {h for txs in stranded.values() for h in txs.values()}
        self.first_seen = {h: self.first_seen.get(h, now) for h in seen}

        def waited(hashes: Iterable[str]) -> bool:
            return any(now - self.first_seen[h] >= self.stuck_after for h in hashes)

        acted = False
        for sender, txs in stranded.items():
            if waited(txs.values()):
                acted = self._send_again(sender, txs) or acted
        if waited(ready):
            # Shown with a failed test's captured log: how often the race bit, and where.
            log.warning("anvil left %d ready transaction(s) unmined: mined by hand", len(ready))
            self.call("evm_mine", [])
            self.mined += 1
            acted = True
        if acted:
            self.first_seen.clear()
        return acted

    def _send_again(self, sender: str, txs: dict[int, str]) -> bool:
        """Take `sender`'s transactions out of the pool and send them again, lowest nonce
        first. Skipped (for the next look) when the sender's pool changed since it was read:
        a transaction sent meanwhile would be taken out and not sent again."""
        raws = [self.call("eth_getRawTransactionByHash", [txs[n]]) for n in sorted(txs)]
        now = self.call("txpool_content", [])
        if _by_sender(now, sender) != set(txs.values()):
            return False
        log.warning("anvil left %s's nonces %s queued for nothing: sent again", sender, sorted(txs))
        self.call("anvil_removePoolTransactions", [sender])
        for raw in raws:
            # A worker re-broadcasting the same bytes meanwhile makes anvil answer "already
            # known": the transaction is back either way, and the later ones still go.
            with contextlib.suppress(RpcError):
                self.call("eth_sendRawTransaction", [raw])
                self.resent += 1
        return True


def _ready(content: dict[str, Any]) -> set[str]:
    return {str(tx["hash"]) for txs in content["pending"].values() for tx in txs.values()}


def _by_sender(content: dict[str, Any], sender: str) -> set[str]:
    """Every hash of `sender` in the pool, ready or queued."""
    return {
        str(tx["hash"])
        for part in ("pending", "queued")
        for tx in content[part].get(sender, {}).values()
    }


class MinesMissed:
    """A thread that checks the pool of the anvil at `url` every `every` seconds while inside."""

    def __init__(
        self,
        url: str = "",
        every: float = 0.5,
        call: Call | None = None,
        stuck_after: float = STUCK_AFTER,
    ) -> None:
        # The project's JSON-RPC client, with connections of its own (this is another thread),
        # closed on exit: a socket left to the garbage collector warns in some later test.
        self.rpc: JsonRpc | None = None
        if call is None:
            self.rpc = JsonRpc(url)
            call = self.rpc.call
        self.pool = StuckPool(call, stuck_after)
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            # A test that stops the node, or stands in for it, goes on without the check.
            try:
                self.pool.check()
            except ChainError:
                continue

    def __enter__(self) -> MinesMissed:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(5)
        if self.rpc is not None:
            self.rpc.close()


def node_call(w3: Web3) -> Call:
    """A `Call` on w3's provider: its result, or RpcError for a JSON-RPC error (as JsonRpc)."""

    def call(method: str, params: list[Any]) -> Any:
        resp = w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in resp:
            raise RpcError.of(resp["error"], method)
        return resp["result"]

    return call


def wait_until_mined(w3: Web3, timeout: float = 60.0) -> None:
    """With automine on, wait until the node's pool holds nothing a block should take.

    anvil's automine mines in the background: eth_sendRawTransaction answers before the block
    exists. On a loaded machine a receipt read and an index run right after the send found
    nothing (a full run, stop 28: a DAO vote mined one second after the two beat rounds had
    ended). The tests' beat helpers (drive, run_chain) call this after their sends, so a
    transaction anvil missed is taken before receipts are read. With automine off the pool is
    the test's to empty, so there is nothing to wait for. A state is awaited, never a time;
    `timeout` only turns a hang into a failure."""
    call = node_call(w3)
    if not call("anvil_getAutomine", []):
        return
    deadline = time.monotonic() + timeout
    pool = StuckPool(call)
    while not pool.settle_once():  # what automine missed is mined or sent again
        assert time.monotonic() < deadline, "anvil did not mine its pending transactions"
        time.sleep(0.01)


def outbox_round(
    svc: OutboxService, session: Session, w3: Web3, *, recover: bool = False, mine: bool = True
) -> None:
    """One round of the beat's outbox work, as the tests' helpers drive it by hand: send every
    sender's queued rows (and with `recover`, undo what a reorg took), mine a block (unless
    `mine` is False: the DAO's tests count blocks for voting periods), wait until the pool is
    settled (what automine missed is taken), then read the receipts."""
    for sender in svc.senders_with_work(session):
        svc.send_pending(session, sender)
    if recover:
        recover_reorged(svc, session)
    if mine:
        node_call(w3)("anvil_mine", ["0x1"])
    wait_until_mined(w3)
    svc.check_receipts(session)
