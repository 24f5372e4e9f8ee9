"""Points programme kinds: the one registry (PRESETS), and the 6-month rule for paid points.

Every kind of points programme is one `Programme` entry in PRESETS: its on-chain programme id
and expiry preset (deployed by backend/deploy.py), the reason string its issues carry on
chain, the label the points page shows for its lots, and, when the platform grants it by itself,
how (`Grant`). "welcome" is one kind among the others. Adding a kind: one entry here, and its
label's translations in webui/translations/{ja,en}/LC_MESSAGES/points.po.

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

from backend.core.errors import N_

MAX_PAID_DAYS = 180  # six months, counted short (the shortest 6 months is 181 days)

EMAIL_VERIFIED = "email_verified"  # a Grant's trigger: the sign-up's mailed link was followed
# A Grant's trigger: someone checked in to a town's event (backend/events), once per event (the
# grant key "event:<id>"). The venue saw them, so an unverified address does not stop it.
EVENT_CHECK_IN = "event_check_in"


class ProgrammeRuleError(ValueError):
    """A programme preset breaks the 6-month rule."""


@dataclass(frozen=True)
class Grant:
    """How the platform grants a kind by itself: `amount` points to the user's built-in
    account when `trigger` happens, at most once per user, town, programme and grant key
    (the UNIQUE constraint of `points_grants`), issued by the issuer role key through the
    outbox and audited as `actor`."""

    trigger: str
    amount: int
    actor: str
    verified_email: bool = True  # refused (EmailNotVerified) until the address is verified


@dataclass(frozen=True)
class Programme:
    programme_id: int
    expiry_days: int  # 0: never expires (free points only)
    paid: bool = False
    name: str = ""  # the registry key, e.g. "welcome"
    reason: str = ""  # the reason string its issues carry on chain (PointsIssued.reason)
    label: str = ""  # msgid of the label of its lots on the points page (N_-marked)
    grant: Grant | None = None  # None: issued by staff or a sale, not by the platform itself

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


WELCOME = Programme(
    1,
    180,
    name="welcome",
    reason="welcome",
    label=N_("Welcome points"),
    grant=Grant(EMAIL_VERIFIED, 500, "system:signup"),
)
PAID_PREMIUM = Programme(
    2, 180, paid=True, name="purchase premium", reason="premium", label=N_("Premium points")
)
THANKS = Programme(3, 90, name="thank-you", reason="thanks", label=N_("Thank-you points"))
EVENT_PRIZE = Programme(
    4,
    30,
    name="event prize",
    reason="prize",
    label=N_("Event prize points"),
    grant=Grant(EVENT_CHECK_IN, 100, "system:events", verified_email=False),
)

PRESETS = (WELCOME, PAID_PREMIUM, THANKS, EVENT_PRIZE)


def by_reason(reason: str) -> Programme | None:
    """The kind whose on-chain reason string this is (None: a reason no kind uses)."""
    return next((p for p in PRESETS if reason and p.reason == reason), None)


def granted_on(trigger: str) -> tuple[Programme, ...]:
    """The kinds the platform grants when `trigger` happens."""
    return tuple(p for p in PRESETS if p.grant is not None and p.grant.trigger == trigger)


# The expiries a town's staff choose from in the console (days; 0: never). A paid kind is
# offered only those within MAX_PAID_DAYS, so the console cannot break the 6-month rule.
EXPIRY_PRESETS = (30, 60, 90, 180, 365, 0)


def expiry_choices(*, paid: bool) -> tuple[int, ...]:
    """The expiry presets a programme of a paid (or free) kind may use."""
    return tuple(d for d in EXPIRY_PRESETS if not paid or 1 <= d <= MAX_PAID_DAYS)


def kind(name: str) -> Programme | None:
    """The registry entry of a programme kind by its name ("welcome", "thank-you", ...)."""
    return next((p for p in PRESETS if p.name == name), None)
