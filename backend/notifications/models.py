"""Notifications' tables: what a person was told (in the app and by mail) and what they want to
be told.

A notification is one fact for one person: a charge was paid from their points, points arrived,
a use of their ticket was marked, a poll or proposal opened in their town. `key` names the fact
("charge_paid:42"); (user_id, key) is UNIQUE, so an indexer handler that runs twice, a reorg that
replays the event, or a task retried makes one row, and so one mail. The row holds `params`
(amounts, names in both languages, ids for links), never text: the page and the mail write it in
the reader's language when they show it (backend/notifications/texts.py).

`in_app`: whether the app lists it (the person's switch for that kind when the fact arrived).
`withdrawn_at`: a reorg took the fact off the chain; the row is hidden until the event comes back
(the same key clears it again).

The mail's states: pending (due at `email_next_at`) -> sending (a worker holds it until
`email_next_at`; past that it is due again: the worker died) -> sent; or back to pending later
(the SMTP server failed, or the person's hourly cap is reached) and failed after the last try.
No mail at all: off (the person's switch), no_address (no verified address), stale (the fact
was days old when indexed, e.g. a backfill), withdrawn (a reorg took it back before it went).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow

CHARGE_PAID = "charge_paid"
POINTS_ARRIVED = "points_arrived"
TICKET_USED = "ticket_used"
VOTE_OPENED = "vote_opened"
# A printed payment card issued or replaced in the person's name by town staff (merchants):
# the resident learns of a card they did not ask for (migration 0047 widens the CHECKs).
CARD_ISSUED = "card_issued"
KINDS = (CHARGE_PAID, POINTS_ARRIVED, TICKET_USED, VOTE_OPENED, CARD_ISSUED)

EMAIL = "email"
IN_APP = "in_app"
CHANNELS = (IN_APP, EMAIL)

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
OFF = "off"
NO_ADDRESS = "no_address"
STALE = "stale"
WITHDRAWN = "withdrawn"
EMAIL_STATES = (PENDING, SENDING, SENT, FAILED, OFF, NO_ADDRESS, STALE, WITHDRAWN)
OPEN = (PENDING, SENDING)  # a worker may still send it

MAX_KEY = 200


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        # The fact once per person; leading with `key`, it also finds a fact's rows (withdraw).
        UniqueConstraint("key", "user_id"),
        CheckConstraint(f"kind IN ({_in(KINDS)})", name="kind"),
        CheckConstraint(f"email_state IN ({_in(EMAIL_STATES)})", name="email_state"),
        CheckConstraint("email_attempts >= 0", name="email_attempts_not_negative"),
        # The header's badge: a person's unread ones.
        Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
        # The mail worker: what is due.
        Index("ix_notifications_email_state_email_next_at", "email_state", "email_next_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(MAX_KEY))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column()
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column()
    email_state: Mapped[str] = mapped_column(String(16), default=OFF)
    email_attempts: Mapped[int] = mapped_column(default=0)
    email_next_at: Mapped[dt.datetime | None] = mapped_column()
    email_sent_at: Mapped[dt.datetime | None] = mapped_column()
    email_error: Mapped[str] = mapped_column(String(200), default="")


class NotificationPreference(Base):
    """A person's switch for one kind on one channel. No row: on (the default)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "channel"),
        CheckConstraint(f"kind IN ({_in(KINDS)})", name="kind"),
        CheckConstraint(f"channel IN ({_in(CHANNELS)})", name="channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
