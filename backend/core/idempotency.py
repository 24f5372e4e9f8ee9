"""The first answer for a repeated idempotency key, also when both requests run at once.

A request checks for an earlier row with its key, then inserts its own. Two requests sent
together both find nothing; the database's UNIQUE constraint lets one insert win and the other
fails with IntegrityError (PostgreSQL: when the winner commits; SQLite: once it gets the write
lock). `first_answer` turns that loss into the winner's answer, re-read in a fresh transaction,
instead of a 500. It never hides another integrity error: if no first answer exists, it raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")
U = TypeVar("U")


def first_answer(
    session: Session,
    write: Callable[[], T],
    first: Callable[[], U | None],
    *,
    also: tuple[type[Exception], ...] = (),
) -> T | U:
    """`write()` (adds rows, commits); if a concurrent twin committed the same key first, roll
    back and return `first()`, the twin's result.

    `also`: exceptions that likewise give way to a committed twin, e.g. a refusal (sold out,
    over a cap, no balance) that the twin itself caused by using the stock first: one key, one
    answer. Raised as they are when there is no twin."""
    caught: tuple[type[Exception], ...] = (IntegrityError, *also)
    try:
        return write()
    except caught:
        session.rollback()
        found = first()
        if found is None:
            raise
        return found
