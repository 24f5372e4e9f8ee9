"""Platform-wide tables: the append-only audit log, worker heartbeats and the data generation
that cached pages are checked against (backend/core/page_cache.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, Numeric, String, Text, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from backend.core.db import Base, utcnow
from backend.core.numbers import db_id_or_none

TokenAmount = Numeric(78, 0)  # uint256 fits; never a float


class DataGeneration(Base):
    """One row (id 1): how many committed writes changed the data pages show. Bumped after
    every commit that wrote (backend/core/page_cache.py); cached pages are kept per value."""

    __tablename__ = "data_generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditLog(Base):
    """Who did what to money or rights, and why. Rows are only ever inserted.

    `town_id` scopes a row to the town whose console shows it (the audit page). Writers that
    know their town set it; rows written before it existed were backfilled from
    details["town_id"] (and settlements' and merchants' towns) by migration 0027; a row with
    none (platform-wide, or a writer that does not set it yet) is shown to no town.
    A writer that leaves it empty gets it filled on insert (`_scope_to_town`): from
    details["town_id"], a "town" subject, or a resolver a domain registered for its subject
    type (`register_audit_town`, e.g. the merchants domain for "merchant" and "settlement").
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_town_id_at", "town_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60), index=True)
    subject_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str] = mapped_column(String(120))
    amount: Mapped[Decimal | None] = mapped_column(TokenAmount)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # towns.id, with no foreign key: core knows no domain's table.
    town_id: Mapped[int | None] = mapped_column()


# subject_type -> (session, subject_id) -> the subject's town id, registered by the domains
# that own those subjects (core knows no domain's tables).
_TOWN_RESOLVERS: dict[str, Callable[[Session, str], int | None]] = {}
# details key -> the subject type whose resolver finds the town (e.g. "merchant_id").
_DETAIL_SUBJECTS: dict[str, str] = {}


def register_audit_town(
    subject_type: str, resolve: Callable[[Session, str], int | None], detail_key: str = ""
) -> None:
    """Let audit rows about `subject_type` (or naming one in details[detail_key]) find their
    town on insert when their writer did not set town_id."""
    _TOWN_RESOLVERS[subject_type] = resolve
    if detail_key:
        _DETAIL_SUBJECTS[detail_key] = subject_type


def register_audit_town_table(subject_type: str, model: Any, detail_key: str = "") -> None:
    """`register_audit_town` for a table with `id` and `town_id` columns: audit rows whose
    subject is one of its rows belong to that row's town."""

    def resolve(session: Session, subject_id: str) -> int | None:
        row_id = db_id_or_none(subject_id)
        if row_id is None:
            return None
        found = session.scalar(select(model.town_id).where(model.id == row_id))
        return int(found) if found is not None else None

    register_audit_town(subject_type, resolve, detail_key)


def audit_town_id(session: Session, row: AuditLog) -> int | None:
    """The town an audit row belongs to, as far as it can be told (None: platform-wide)."""
    details = row.details if isinstance(row.details, dict) else {}
    town = details.get("town_id")
    if isinstance(town, int) and not isinstance(town, bool):
        return db_id_or_none(town)
    if row.subject_type == "town" and (town := db_id_or_none(row.subject_id)) is not None:
        return town
    resolve = _TOWN_RESOLVERS.get(row.subject_type)
    if resolve is not None and str(row.subject_id).isdigit():
        found = resolve(session, str(row.subject_id))
        if found is not None:
            return found
    for key, subject_type in _DETAIL_SUBJECTS.items():
        value = details.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            found = _TOWN_RESOLVERS[subject_type](session, str(value))
            if found is not None:
                return found
    return None


@event.listens_for(Session, "before_flush")
def _scope_to_town(session: Session, _context: Any, _instances: Any) -> None:
    rows = [o for o in session.new if isinstance(o, AuditLog) and o.town_id is None]
    if rows:
        with session.no_autoflush:
            for row in rows:
                row.town_id = audit_town_id(session, row)


class Heartbeat(Base):
    """The last time a periodic process (the Celery beat + worker pair) proved it runs."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column()
