"""Platform-wide tables: the append-only audit log and worker heartbeats."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow

TokenAmount = Numeric(78, 0)  # uint256 fits; never a float


class AuditLog(Base):
    """Who did what to money or rights, and why. Rows are only ever inserted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60), index=True)
    subject_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str] = mapped_column(String(120))
    amount: Mapped[Decimal | None] = mapped_column(TokenAmount)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Heartbeat(Base):
    """The last time a periodic process (the Celery beat + worker pair) proved it runs."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column()
