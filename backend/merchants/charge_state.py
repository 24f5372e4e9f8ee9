"""Payments out of one customer's points, serialised per payer (issue 11 §3).

A payment checks the payer's available points (confirmed minus what is queued and not yet
indexed) and then queues the transfer. Two payments of one payer checked at the same time would
both see the same balance and could together spend more than it. `payer_summary` first takes
the payer's lock with ONE UPDATE that changes nothing (a row lock on PostgreSQL, the database's
write lock on SQLite, where `with_for_update()` does nothing), held until the caller commits or
rolls back; the balance read after it sees every payment committed before it.

The lock is taken last (after the charge's row and a customer code's daily-limit row), so the
payment paths cannot wait on each other in a cycle.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.core.upsert import lock_row
from backend.points.services import PointsService, PointsSummary
from backend.regions.models import Town


def lock_payer(session: Session, user_id: int) -> None:
    """Serialise the payments of one user until the caller's transaction ends."""
    lock_row(session, User.locale, User.id == user_id)


def payer_summary(
    session: Session, points: PointsService, town: Town, user_id: int, address: str
) -> PointsSummary:
    """The payer's points in `town`, read under the payer's lock (see the module docstring)."""
    lock_payer(session, user_id)
    return points.summary(town, address)
