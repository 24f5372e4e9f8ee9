"""anvil's automine can leave a ready transaction in its pool, unmined until another transaction
arrives (foundry-rs/foundry#10122: "block mining misses ready transactions"; it is still there
in anvil 1.7.1). Seen in a full run: a collection's five set-up calls, sent as one batch, went
into four blocks of one transaction each; the fifth stayed pending for the 90 s the journey
waited, and the collection stayed "setting up". On a real chain the next block takes such a
transaction; on a test chain no block comes unless a transaction does.

`StuckPool` looks at the pool, and a transaction it has seen pending for `STUCK_AFTER` seconds
or more, with automine on, is mined by hand (evm_mine). anvil's own mining takes milliseconds,
so a transaction pending that long is stuck, and mining it changes nothing else: automine would
have put it in a block anyway. With automine off the pool is the test's, and is left
alone. `MinesMissed` looks every half second, in a thread, while real workers or beat tickers
drive the chain (tests/conftest.py BeatTicker, tests/webhooks/workers.py Beat, the
multi-process test); `wait_until_mined` looks while it waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from backend.chain.errors import ChainError
from backend.chain.rpc import JsonRpc

STUCK_AFTER = 1.0  # seconds a ready transaction may wait before it counts as missed

Call = Callable[[str, list[Any]], Any]


class StuckPool:
    """Mines the pool's ready transactions that anvil's automine left behind."""

    def __init__(self, call: Call, stuck_after: float = STUCK_AFTER) -> None:
        self.call = call
        self.stuck_after = stuck_after
        self.first_seen: dict[str, float] = {}  # pending hash -> when it was first seen
        self.mined = 0  # blocks mined by hand, for the tests of this helper

    def pending(self) -> set[str]:
        """The hashes of the pool's ready transactions (not the queued ones behind a gap)."""
        content = self.call("txpool_content", [])
        return {
            str(tx["hash"]) for by_nonce in content["pending"].values() for tx in by_nonce.values()
        }

    def check(self) -> bool:
        """Look once; True when the pool held a missed transaction and a block was mined."""
        if not self.call("anvil_getAutomine", []):
            self.first_seen.clear()
            return False
        now = time.monotonic()
        pending = self.pending()
        self.first_seen = {h: self.first_seen.get(h, now) for h in pending}
        if not any(now - seen >= self.stuck_after for seen in self.first_seen.values()):
            return False
        self.call("evm_mine", [])
        self.first_seen.clear()
        self.mined += 1
        return True


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
