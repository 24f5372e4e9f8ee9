"""Outgoing webhooks' tables: endpoints (where an owner's events go, and the secret that signs
them, sealed) and deliveries (one event to one endpoint, a small outbox of its own).

An endpoint's `owner` is an opaque key the calling domain chooses ("api_service:12"): this
package knows no domain. A delivery's `event_id` is UNIQUE ("issuance:7:confirmed"), so queueing
the same event twice is one delivery, and it is the `webhook-id` header on every attempt, so the
receiver can drop a repeat (Standard Webhooks).

States of a delivery: pending (due at `next_attempt_at`) -> delivering (a worker holds it until
`claimed_until`; past that it is due again: the worker died) -> delivered (a 2xx), or back to
pending with a later `next_attempt_at` (any other answer, a timeout, a refused URL), or failed
after the last attempt (staff see it and may send it again).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow

PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed"
STATES = (PENDING, DELIVERING, DELIVERED, FAILED)
OPEN = (PENDING, DELIVERING)  # a worker may still send it


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(80), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    # The whsec_ secret, AES-256-GCM under a key derived from SECRET_KEY (signing.py says why);
    # the associated data binds it to `owner`, so a ciphertext copied to another row fails.
    secret_nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    secret_created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(f"state IN ({', '.join(repr(s) for s in STATES)})", name="state"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The claim query: open rows by due time.
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str] = mapped_column(String(80))
    # Where the last attempt went (the endpoint's URL at queue time until a first attempt).
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the body's "data"
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column()
    # A fresh value per claim: a worker whose lease ran out cannot finish a row another holds.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_status: Mapped[int | None] = mapped_column()  # the receiver's HTTP status
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column()
    failed_at: Mapped[dt.datetime | None] = mapped_column()
