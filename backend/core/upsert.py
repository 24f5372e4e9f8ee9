"""Rows two requests touch at once, on the two databases the platform runs on: INSERT ... ON
CONFLICT, and a row's write lock.

SQLAlchemy's generic `insert()` has no ON CONFLICT clause: PostgreSQL's and SQLite's dialects
each have their own, with the same API. Rows that two requests may create at once (a counter,
a delivery, an allowlist line) are written with `on_conflict_do_nothing` on their UNIQUE
columns, so the second request finds the row instead of failing on an IntegrityError.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session


def insert_for(session: Session, model: Any) -> Any:
    """An INSERT of `model` in the session's dialect: `.on_conflict_do_nothing(...)` and
    `.on_conflict_do_update(...)` are available on it. Raises RuntimeError on other databases."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"the platform runs on PostgreSQL or SQLite, not {dialect}")


def ensure_row(session: Session, model: Any, values: dict[str, Any], keys: list[str]) -> None:
    """Create `model`'s row of `values` unless one with the same `keys` exists (ON CONFLICT DO
    NOTHING): safe when two transactions create it at once."""
    session.execute(
        insert_for(session, model).values(**values).on_conflict_do_nothing(index_elements=keys)
    )


def lock_row(session: Session, column: InstrumentedAttribute[Any], *where: Any) -> None:
    """Take the write lock of the rows of `column`'s table matching `where` until the caller's
    transaction ends: ONE UPDATE that sets `column` to itself, so it changes nothing. A row lock
    on PostgreSQL, the database's write lock on SQLite (where SELECT ... FOR UPDATE does
    nothing); reads after it see every transaction committed before it."""
    session.execute(
        update(column.class_)
        .where(*where)
        .values({column.key: column})
        .execution_options(synchronize_session=False)
    )
