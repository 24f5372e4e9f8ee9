"""LotBook: the per-holder points lots of a RegionPoints contract, projected from its events.

It mirrors the contract's rules (contracts/RegionPoints.sol, docs/adr/0002-points-expiry.md) so
that what the pages show equals the chain's `lotsOf` / `balanceOf`:

- a lot is (expiry day, amount); expiry day `d` means the points cannot be spent from 00:00 JST
  of JST day `d` on. A holder keeps at most MAX_LOTS lots, sorted by day; with 17, the lot that
  loses the fewest point-days (amount x days) joins the lot expiring just before it;
- every debit `Transfer(from, ...)` consumes `from`'s lots soonest first (the burn of expired lots
  is itself such a Transfer and consumes exactly the expired lots; `PointsExpired` follows);
- a mint becomes a lot when its `PointsIssued` / `PointsBatchIssued` says it expires;
- `PointsLotMoved` adds a moved piece to the recipient (a payment to a merchant has none).

Pure Python, no database: fed event by event (name, args, transaction key) in chain order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_LOTS = 16
DAY = 86_400
DAY_OFFSET = 9 * 3600  # expiry days start at 00:00 JST
ZERO = "0x" + "00" * 20
EVENTS = (
    "Transfer",
    "PointsIssued",
    "PointsBatchIssued",
    "PointsExpired",
    "PointsLotMoved",
)


def jst_day(timestamp: int) -> int:
    """The JST day number of a chain timestamp (RegionPoints._today)."""
    return (int(timestamp) + DAY_OFFSET) // DAY


def day_start(day: int) -> int:
    """The UTC timestamp at which JST day `day` starts."""
    return int(day) * DAY - DAY_OFFSET


class LotBookMismatch(AssertionError):
    """The events do not follow the contract's rules (a gap or a wrong projection)."""


@dataclass
class LotBook:
    """`strict`: raise LotBookMismatch when a PointsExpired leaves a lot of its day (the events
    were not all seen). Off for a book fed with only one holder's transactions, where other
    holders of those transactions are seen partially; their lots are then just tidied."""

    strict: bool = False
    lots: dict[str, list[list[int]]] = field(default_factory=lambda: defaultdict(list))
    raw: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _tx: Any = None
    _mints: list[tuple[str, int]] = field(default_factory=list)

    # ------------------------------------------------------------------ feeding

    def apply(self, name: str, args: Mapping[str, Any], tx: Any = None) -> None:
        """Apply one event. `tx` identifies its transaction (mints are matched with the
        PointsIssued / PointsBatchIssued of the same transaction)."""
        if tx != self._tx:
            self._tx, self._mints = tx, []
        if name == "Transfer":
            frm, to, value = str(args["from"]), str(args["to"]), int(args["value"])
            if frm == ZERO:
                self.raw[to] += value
                self._mints.append((to, value))
                return
            self.raw[frm] -= value
            self._consume(frm, value)
            if to != ZERO:
                self.raw[to] += value
        elif name == "PointsIssued":
            day = jst_day(int(args["expiresAt"])) if int(args.get("expiresAt", 0)) else 0
            to, value = self._mints.pop() if self._mints else (str(args["to"]), 0)
            if day:
                self._add(to, day, value)
            self._mints = []
        elif name == "PointsBatchIssued":
            expires = int(args.get("expiresAt", 0))
            if expires:
                for to, value in self._mints:
                    self._add(to, jst_day(expires), value)
            self._mints = []
        elif name == "PointsExpired":
            holder, day = str(args["holder"]), int(args["day"])
            queue = self.lots.get(holder, [])
            if any(d <= day for d, _ in queue):
                if self.strict:
                    raise LotBookMismatch(f"{holder} keeps a lot of day <= {day} after expiry")
                queue[:] = [lot for lot in queue if lot[0] > day]
        elif name == "PointsLotMoved":
            self._add(str(args["to"]), int(args["day"]), int(args["amount"]))

    def feed(self, events: Iterable[tuple[str, Mapping[str, Any], Any]]) -> LotBook:
        for name, args, tx in events:
            self.apply(name, args, tx)
        return self

    # ------------------------------------------------------------------ reading

    def lots_of(self, holder: str) -> list[tuple[int, int]]:
        """(expiry day, amount) soonest first, expired ones included (as `lotsOf` on chain)."""
        return [(d, a) for d, a in self.lots.get(holder, [])]

    def expired(self, holder: str, today: int) -> int:
        return sum(a for d, a in self.lots.get(holder, []) if d <= today)

    def spendable(self, holder: str, today: int) -> int:
        """`balanceOf` on a chain whose current JST day is `today`."""
        return self.raw.get(holder, 0) - self.expired(holder, today)

    def holders_with_expired(self, today: int) -> list[str]:
        return sorted(h for h, lots in self.lots.items() if lots and lots[0][0] <= today)

    # ------------------------------------------------------------------ the contract's rules

    def _consume(self, holder: str, value: int) -> None:
        queue = self.lots.get(holder)
        while value and queue:
            day, amount = queue[0]
            if amount > value:
                queue[0][1] = amount - value
                return
            queue.pop(0)
            value -= amount

    def _add(self, holder: str, day: int, amount: int) -> None:
        if amount <= 0:
            return
        queue = self.lots[holder]
        for lot in queue:
            if lot[0] == day:
                lot[1] += amount
                return
        p = next((i for i, (d, _) in enumerate(queue) if d > day), len(queue))
        queue.insert(p, [day, amount])
        if len(queue) <= MAX_LOTS:
            return
        # 17 lots: merge the one losing the fewest point-days into its sooner neighbour
        costs = [queue[i][1] * (queue[i][0] - queue[i - 1][0]) for i in range(1, len(queue))]
        best = 1 + costs.index(min(costs))
        queue[best - 1][1] += queue[best][1]
        del queue[best]
