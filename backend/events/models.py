"""Event tables: an event a town's staff hold (names, place, time, the points for attending)
and one check-in per person per event.

`EventCheckIn` is UNIQUE per (event, user): the first of any number of check-ins of one person
(their own scan of the event's QR, venue staff scanning their code, ten at once) inserts the
row and the others fail on the constraint and find it. Its points are a `points_grants` row
(backend/points) with the grant key `event:<id>`, queued in the same transaction; the check-in
keeps that grant's id (`points_grant_id`), its state follows the chain there.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import register_audit_town_table

SCHEDULED = "scheduled"
CANCELLED = "cancelled"
EVENT_STATUSES = (SCHEDULED, CANCELLED)

SELF = "self"  # the attendee scanned the event's QR
STAFF_SCAN = "staff"  # venue staff scanned (or typed) the attendee's code or card
METHODS = (SELF, STAFF_SCAN)


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Event(Base):
    """One event of one town. Times are stored in UTC and shown in Japan time (JST); the
    check-in window is [starts_at, ends_at). `qr_generation` is signed into the check-in QR
    (backend/events/tokens.py): staff renew the QR by raising it, and older QRs stop working."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("town_id", "request_key"),
        CheckConstraint(f"status IN ({_in(EVENT_STATUSES)})", name="status"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_events_town_starts", "town_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    request_key: Mapped[str] = mapped_column(String(64))  # the creating form's one-time key
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    place_ja: Mapped[str] = mapped_column(String(200))
    place_en: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[dt.datetime] = mapped_column()
    ends_at: Mapped[dt.datetime] = mapped_column()
    points: Mapped[int] = mapped_column(BigInteger)  # per attendee
    programme_id: Mapped[int] = mapped_column(BigInteger)  # the town's "event prize" programme
    status: Mapped[str] = mapped_column(String(16), default=SCHEDULED)
    qr_generation: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cancelled_by: Mapped[int | None] = mapped_column()
    cancelled_at: Mapped[dt.datetime | None] = mapped_column()

    def name(self, locale: str | None) -> str:
        return self.name_ja if (locale or "ja").startswith("ja") else self.name_en

    def place(self, locale: str | None) -> str:
        return self.place_ja if (locale or "ja").startswith("ja") else self.place_en


class EventCheckIn(Base):
    """One person checked in to one event, once (UNIQUE), with how and by whom, and the
    points grant their attendance queued."""

    __tablename__ = "event_check_ins"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        CheckConstraint(f"method IN ({_in(METHODS)})", name="method"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    points_grant_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# The town's audit log shows rows about its events ("event" subjects, or details' event_id).
register_audit_town_table("event", Event, "event_id")
