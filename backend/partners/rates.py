"""Each town's yen value of one point, for clearing with its partner towns, kept as a history of
versions by month (ADR 0026).

Why versions: one member of a town's staff sets the rate, and the clearing of a month values the
points paid that month at the rate of the town whose points paid. Valued at whatever the rate is
on the day of the clearing, the town that owes could lower its rate just before its staff
approve and pay its partner less for points spent months ago (or the creditor raise its own).
So a change made in month M is in force from the first day of M + 1 (JST, the clearing's
calendar, months.py), and a month is always valued at the rate in force in it: a partner knows
the rate before the payments it values are made, and no change reaches a month that has begun.

"Now" is the chain's clock, as for the clearing's months (the latest block's time): every
payment already on chain is in that block's month or an earlier one, so a change can only reach
payments not made yet. A second change before the first is in force replaces it; setting the
rate in force withdraws a pending change. Every change writes an AuditLog "clearing.rate".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.upsert import ensure_row, lock_row
from backend.partners.models import FROM_THE_START, PointRateVersion
from backend.partners.months import month_of, next_month
from backend.partners.partnerships import PartnershipService
from backend.regions.models import Town

MAX_RATE = 1_000_000
DEFAULT_RATE = 1  # yen per point of a town that never set its rate
# Longer than any accepted value (leading zeros included); int() of a text of thousands of
# digits is slow and, past 4,300, refused with a ValueError: such input is simply invalid.
_MAX_DIGITS = 20


@dataclass
class RateVersion:
    """One version of a town's rate, as the console lists it."""

    effective_from: str  # YYYY-MM, or FROM_THE_START
    yen_per_point: int
    set_by: User | None  # None: the platform's default
    set_at: dt.datetime
    state: str  # "pending" (from a month not begun), "current" (this month) or "past"

    @property
    def from_the_start(self) -> bool:
        return self.effective_from == FROM_THE_START


@dataclass
class TownRates:
    """A town's rate this month, the change waiting for next month (if any), and its history
    (newest first)."""

    month: str  # this JST month by the chain's clock
    current: int
    pending: RateVersion | None
    history: list[RateVersion]

    @property
    def starts(self) -> str:
        """The month a change made now is in force from."""
        return next_month(self.month)


def _in_force(versions: list[PointRateVersion], month: str) -> int:
    """The rate in force in `month`: the version with the latest start not after it."""
    rate = DEFAULT_RATE
    for v in versions:  # by effective_from
        if v.effective_from <= month:
            rate = v.yen_per_point
    return rate


def whole_yen(value: object) -> int:
    """A rate typed in a form (or sent as a number): a whole number of yen, 1..MAX_RATE;
    InvalidInput for anything else (zero, negative, fractions, exponents, other digits)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit():
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, int) or not 1 <= text <= MAX_RATE:
        raise InvalidInput(
            N_("Enter a whole number of yen from 1 to %(max)d."), field="rate", max=MAX_RATE
        )
    return text


class RateService(PartnershipService):
    """Towns' rates by month (on top of the partnerships)."""

    def current_month(self) -> str:
        """This JST month by the chain's clock (the clearing's "now")."""
        return month_of(dt.datetime.fromtimestamp(self._chain_now(), dt.UTC))

    def _versions(self, town_id: int, *, fresh: bool = False) -> list[PointRateVersion]:
        q = (
            select(PointRateVersion)
            .where(PointRateVersion.town_id == town_id)
            .order_by(PointRateVersion.effective_from)
        )
        if fresh:
            q = q.execution_options(populate_existing=True)
        return list(self.session.scalars(q))

    def rate_in(self, town_id: int, month: str) -> int:
        """The town's yen per point in force in JST month `month` (what its clearing uses)."""
        found = self.session.scalar(
            select(PointRateVersion.yen_per_point)
            .where(PointRateVersion.town_id == town_id, PointRateVersion.effective_from <= month)
            .order_by(PointRateVersion.effective_from.desc())
            .limit(1)
        )
        return int(found) if found is not None else DEFAULT_RATE

    def rate(self, town_id: int) -> int:
        """The town's yen per point in force this month."""
        return self.rate_in(town_id, self.current_month())

    def rates(self, user: User | None, town: Town) -> TownRates:
        """The town's rate this month, its pending change and its history. STAFF."""
        require_town_role(user, town.id, STAFF)
        month = self.current_month()
        versions = self._versions(town.id)
        begun = [v.effective_from for v in versions if v.effective_from <= month]
        current_from = begun[-1] if begun else None

        def state(v: PointRateVersion) -> str:
            if v.effective_from > month:
                return "pending"
            return "current" if v.effective_from == current_from else "past"

        history = [
            RateVersion(
                v.effective_from,
                v.yen_per_point,
                self.session.get(User, v.set_by) if v.set_by is not None else None,
                v.set_at,
                state(v),
            )
            for v in reversed(versions)
        ]
        pending = [h for h in history if h.state == "pending"]
        current = _in_force(versions, month)
        return TownRates(month, current, pending[-1] if pending else None, history)

    def set_rate(self, user: User | None, town: Town, value: object) -> PointRateVersion | None:
        """`town`'s staff set the yen value of one of its points (a whole number of yen,
        1..MAX_RATE) from the first day of next month (JST, by the chain's clock); the months
        begun keep theirs. A change waiting for next month is replaced; setting the rate in
        force withdraws it; setting what is already due changes nothing. Returns the change
        waiting (None when none is). Bad input raises InvalidInput and changes nothing.
        AuditLog "clearing.rate" per change."""
        user = require_town_role(user, town.id, STAFF)
        yen = whole_yen(value)
        now = self._now()
        try:
            # One change of a town's rate at a time: the town's first row (the platform's
            # default, made by its first change) is locked until this transaction ends, so
            # concurrent changes each read what the previous one left and their audit rows
            # chain (a row lock on PostgreSQL; SQLite's write lock).
            ensure_row(
                self.session,
                PointRateVersion,
                {
                    "town_id": town.id,
                    "effective_from": FROM_THE_START,
                    "yen_per_point": DEFAULT_RATE,
                    "set_by": None,
                    "set_at": now,
                },
                ["town_id", "effective_from"],
            )
            lock_row(
                self.session,
                PointRateVersion.yen_per_point,
                PointRateVersion.town_id == town.id,
                PointRateVersion.effective_from == FROM_THE_START,
            )
            # The month is read under the lock: a change that waited for it cannot land in a
            # month that began while it waited.
            month = self.current_month()
            starts = next_month(month)
            versions = self._versions(town.id, fresh=True)
            in_force = _in_force(versions, month)
            due = _in_force(versions, starts)
            waiting = [v for v in versions if v.effective_from > month]
            wanted = [] if yen == in_force else [(starts, yen)]
            if [(v.effective_from, v.yen_per_point) for v in waiting] == wanted:
                self.session.rollback()
                return waiting[0] if waiting else None
            details: dict[str, Any] = {
                "town_id": town.id,
                "effective_from": starts,
                "before": due,
                "after": yen,
                "in_force": in_force,
            }
            if waiting:
                details["replaced"] = [
                    {
                        "effective_from": v.effective_from,
                        "yen_per_point": v.yen_per_point,
                        "set_by": v.set_by,
                    }
                    for v in waiting
                ]
            if not wanted:
                details["withdrawn"] = True
            # Anything later than next month exists only if the chain's clock went back (a
            # reorg, a test chain): this change is the town's latest word, so it goes too.
            kept = next((v for v in waiting if v.effective_from == starts and wanted), None)
            gone = [v for v in waiting if v is not kept]
            if gone:
                self.session.execute(
                    delete(PointRateVersion)
                    .where(PointRateVersion.id.in_([v.id for v in gone]))
                    .execution_options(synchronize_session=False)
                )
            pending: PointRateVersion | None = None
            if kept is not None:
                kept.yen_per_point, kept.set_by, kept.set_at = yen, user.id, now
                pending = kept
            elif wanted:
                pending = PointRateVersion(
                    town_id=town.id,
                    effective_from=starts,
                    yen_per_point=yen,
                    set_by=user.id,
                    set_at=now,
                )
                self.session.add(pending)
            self.session.add(
                AuditLog(
                    actor=f"user:{user.id}",
                    action="clearing.rate",
                    subject_type="town",
                    subject_id=str(town.id),
                    reason=f"yen per point for clearing, from {starts}",
                    details=details,
                    town_id=town.id,
                )
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return pending
