"""Points programme presets, and the 6-month rule for paid points.

資金決済法 (Payment Services Act): prepaid payment instruments usable for at most six months
from issue need no registration or deposit. Points a person pays for (a purchase premium bought
with yen, points sold at a counter) are such instruments, so a PAID programme never lives more
than MAX_PAID_DAYS. Free points (thanks, prizes, welcome points) are not prepaid instruments;
they still expire so that the town's liability stays bounded.

A programme of `days` days issued on JST day D expires at 00:00 JST of day D + days + 1
(RegionPoints.expiryOf), i.e. the holder gets `days` full days after the issue day.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAID_DAYS = 180  # six months, counted short (the shortest 6 months is 181 days)


class ProgrammeRuleError(ValueError):
    """A programme preset breaks the 6-month rule."""


@dataclass(frozen=True)
class Programme:
    programme_id: int
    expiry_days: int  # 0: never expires (free points only)
    paid: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        check(self.expiry_days, paid=self.paid)


def check(expiry_days: int, *, paid: bool) -> None:
    """Refuse a paid programme that never expires or lives longer than MAX_PAID_DAYS."""
    if expiry_days < 0:
        raise ProgrammeRuleError("expiry_days must be >= 0")
    if paid and not 1 <= expiry_days <= MAX_PAID_DAYS:
        raise ProgrammeRuleError(
            f"paid points must expire within {MAX_PAID_DAYS} days (資金決済法 6-month rule); "
            f"got {expiry_days or 'never'}"
        )


WELCOME = Programme(1, 180, name="welcome")
PAID_PREMIUM = Programme(2, 180, paid=True, name="purchase premium")
THANKS = Programme(3, 90, name="thank-you")
EVENT_PRIZE = Programme(4, 30, name="event prize")

PRESETS = (WELCOME, PAID_PREMIUM, THANKS, EVENT_PRIZE)
