"""A town's money rules (daily limits per customer and per printed card, the four-eyes amounts
of settlements and of points issued by staff)
and the daily spend counters that enforce the limits.

A counter is raised by ONE conditional UPDATE (`amount + v <= limit`), so two charges at the
same moment cannot both pass a limit that only one fits: PostgreSQL re-checks the WHERE after
the row lock, SQLite holds its single write lock. A read-then-write would let both through.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.core.db import utcnow
from backend.core.errors import N_, AppError, InvalidInput
from backend.core.models import AuditLog
from backend.core.upsert import ensure_row, lock_row
from backend.merchants.models import SpendCounter, TownMoneySettings
from backend.points.services import JST

# Platform defaults while a town has set nothing (points; 1 point = 1 yen).
DEFAULT_CUSTOMER_DAILY_LIMIT = 30_000
DEFAULT_CARD_DAILY_LIMIT = 10_000
DEFAULT_FOUR_EYES_AMOUNT = 100_000
# Points issued by staff in one batch above this need a second member of staff (issuing).
DEFAULT_ISSUE_FOUR_EYES_AMOUNT = 100_000
MAX_SETTING = 10**9
LIMIT_FIELDS = (
    "customer_daily_limit",
    "card_daily_limit",
    "four_eyes_amount",
    "issue_four_eyes_amount",
)
_DEFAULTS = {
    "customer_daily_limit": DEFAULT_CUSTOMER_DAILY_LIMIT,
    "card_daily_limit": DEFAULT_CARD_DAILY_LIMIT,
    "four_eyes_amount": DEFAULT_FOUR_EYES_AMOUNT,
    "issue_four_eyes_amount": DEFAULT_ISSUE_FOUR_EYES_AMOUNT,
}


class DailyLimitReached(AppError):
    status = 409
    code = "daily_limit_reached"


def settings_row(session: Session, town_id: int) -> TownMoneySettings | None:
    return session.get(TownMoneySettings, town_id)


def town_limit(session: Session, town_id: int, field: str) -> int:
    row = settings_row(session, town_id)
    value = getattr(row, field) if row is not None else None
    return int(value) if value is not None else _DEFAULTS[field]


def town_limits(session: Session, town_id: int) -> dict[str, int]:
    return {f: town_limit(session, town_id, f) for f in LIMIT_FIELDS}


# Raising one of these takes two members of staff: one proposes the new amount, another sets
# the same amount to confirm it. Otherwise one member of staff could raise the amount and then
# approve a large settlement, or issue a large batch of points, alone. Lowering applies at once:
# it only asks for more approvals.
TWO_PERSON_RAISE = ("four_eyes_amount", "issue_four_eyes_amount")


def pending_raises(session: Session, town_id: int) -> dict[str, dict[str, int]]:
    """The raises of four-eyes amounts waiting for a second member of staff:
    {field: {"amount": proposed, "proposed_by": user id}}."""
    row = settings_row(session, town_id)
    waiting: dict[str, dict[str, int]] = {}
    for field in TWO_PERSON_RAISE:
        value = getattr(row, f"{field}_raise") if row is not None else None
        if value is not None:
            waiting[field] = {
                "amount": int(value),
                "proposed_by": int(getattr(row, f"{field}_raise_by")),
            }
    return waiting


def set_town_limits(
    session: Session, town_id: int, actor_id: int, data: dict[str, object]
) -> list[str]:
    """Town STAFF (checked by the caller) set any of the limits; AuditLog "town.money_settings"
    for what changed (setting the value a limit has changes nothing). A raise of a four-eyes
    amount (TWO_PERSON_RAISE) waits instead until another member of staff sets the same amount
    (AuditLog "town.money_settings.raise_proposed", then "town.money_settings" naming both);
    the fields left waiting are returned. Bad values change nothing (InvalidInput). The caller
    commits."""
    values: dict[str, int] = {}
    for field in LIMIT_FIELDS:
        if field not in data:
            continue
        v = data[field]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SETTING:
            raise InvalidInput(
                N_("%(field)s must be a whole number from 1 to %(max)d."),
                field=field,
                max=MAX_SETTING,
            )
        values[field] = v
    if not values:
        raise InvalidInput(N_("Nothing to change."), field="customer_daily_limit")
    row = _locked_row(session, town_id)
    current = town_limits(session, town_id)
    applied: dict[str, int] = {}
    confirmed: dict[str, int] = {}
    waiting: list[str] = []
    withdrawn: list[str] = []
    for field, v in values.items():
        if field in TWO_PERSON_RAISE and v > current[field]:
            proposed = getattr(row, f"{field}_raise")
            proposer = getattr(row, f"{field}_raise_by")
            if proposed is None or int(proposed) != v or proposer == actor_id:
                # A first proposal, or another amount (the latest proposal waits), or the same
                # proposer again: nothing applies until someone else agrees.
                if proposed is None or int(proposed) != v:
                    setattr(row, f"{field}_raise", Decimal(v))
                    setattr(row, f"{field}_raise_by", actor_id)
                    _audit(
                        session,
                        actor_id,
                        town_id,
                        "town.money_settings.raise_proposed",
                        "a raise of a four-eyes amount, waiting for a second member of staff",
                        {"field": field, "amount": v, "current": current[field]},
                    )
                waiting.append(field)
                continue
            confirmed[field] = int(proposer)
        if field in TWO_PERSON_RAISE and getattr(row, f"{field}_raise") is not None:
            # Set (raised with a second person, or lowered): no older proposal waits on.
            setattr(row, f"{field}_raise", None)
            setattr(row, f"{field}_raise_by", None)
            withdrawn.append(field)
        if v != current[field]:
            setattr(row, field, Decimal(v))
            applied[field] = v
    if applied or withdrawn:
        row.updated_by = actor_id
        row.updated_at = utcnow()
        details: dict[str, object] = dict(applied)
        if confirmed:
            details["raise_proposed_by"] = confirmed
        if set(withdrawn) - set(confirmed):
            details["raise_withdrawn"] = sorted(set(withdrawn) - set(confirmed))
        _audit(
            session,
            actor_id,
            town_id,
            "town.money_settings",
            "money limits set by town staff",
            details,
        )
    return waiting


def _locked_row(session: Session, town_id: int) -> TownMoneySettings:
    """The town's settings row, made if missing (two first settings at once both pass) and
    locked until the caller's transaction ends (ONE UPDATE that changes nothing: a row lock on
    PostgreSQL, the write lock on SQLite), read afresh: requests at once see each other's
    proposal, so a raise applies only when a different person's proposal was committed."""
    ensure_row(session, TownMoneySettings, {"town_id": town_id}, ["town_id"])
    lock_row(session, TownMoneySettings.updated_by, TownMoneySettings.town_id == town_id)
    row = session.get(TownMoneySettings, town_id, populate_existing=True)
    assert row is not None
    return row


def _audit(
    session: Session, actor_id: int, town_id: int, action: str, reason: str, details: dict
) -> None:
    session.add(
        AuditLog(
            actor=f"user:{actor_id}",
            action=action,
            subject_type="town",
            subject_id=str(town_id),
            reason=reason,
            details=details,
            town_id=town_id,
        )
    )


def jst_day(now: dt.datetime) -> dt.date:
    return now.astimezone(JST).date()


def spend(session: Session, subject: str, day: dt.date, amount: int, limit: int) -> None:
    """Add `amount` to today's counter of `subject` if it stays within `limit`, else raise
    DailyLimitReached. No commit: the caller's transaction keeps or drops it with the charge."""
    if amount > limit:
        raise DailyLimitReached(
            N_("This is over the daily limit of %(limit)d points set by the town."), limit=limit
        )
    ensure_row(session, SpendCounter, {"subject": subject, "day": day, "amount": 0},
               ["subject", "day"])  # fmt: skip
    done = session.execute(
        update(SpendCounter)
        .where(
            SpendCounter.subject == subject,
            SpendCounter.day == day,
            SpendCounter.amount + amount <= limit,
        )
        .values(amount=SpendCounter.amount + amount)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        spent = session.scalar(
            select(SpendCounter.amount).where(
                SpendCounter.subject == subject, SpendCounter.day == day
            )
        )
        raise DailyLimitReached(
            N_(
                "This is over the daily limit of %(limit)d points set by the town "
                "(%(left)d points left today)."
            ),
            limit=limit,
            left=max(0, limit - int(spent or 0)),
        )


def spent(session: Session, subject: str, day: dt.date) -> int:
    """What `subject`'s counter holds for `day` (0 when nothing was spent)."""
    amount = session.scalar(
        select(SpendCounter.amount).where(SpendCounter.subject == subject, SpendCounter.day == day)
    )
    return int(amount or 0)
