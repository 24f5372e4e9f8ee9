"""Service accounts (issue 14 §1): the town's other services (相乗り car-share, ジム gym...) that
issue points through /api/v1, their API keys, their budget counters and their issuances.

- `ServiceAccount`: names in ja/en, the programmes it may issue from, a cap per issuance, a
  daily and an optional monthly budget (points, JST days and months), an optional webhook URL.
- `ServiceApiKey`: a key is shown once; only its public prefix and the SHA-256 of its secret
  are stored. At most two keys are valid at once (a rotation); a revoked or expired key never
  authenticates again.
- `ServiceBudgetUsage`: the points issued per JST day and month, raised by one guarded UPDATE
  per period in the issuing transaction, so concurrent requests never pass a budget together.
- `ApiIssuance`: one issuance asked for by a service (one recipient and amount), UNIQUE per
  service and idempotency key, pointing at the issuing domain's row that carries it on chain.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount, register_audit_town_table

DAY = "day"
MONTH = "month"
PERIODS = (DAY, MONTH)

# What a service sees of an issuance (issuing's row states folded into three).
PENDING = "pending"
CONFIRMED = "confirmed"
FAILED = "failed"
API_STATES = (PENDING, CONFIRMED, FAILED)


class ServiceAccount(Base):
    __tablename__ = "service_accounts"
    __table_args__ = (
        CheckConstraint("daily_budget > 0", name="daily_budget_positive"),
        CheckConstraint("monthly_budget IS NULL OR monthly_budget > 0", name="monthly_positive"),
        CheckConstraint("cap_per_issuance IS NULL OR cap_per_issuance > 0", name="cap_positive"),
        UniqueConstraint("town_id", "name_en"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    # The town's programme ids (points_programmes.programme_id) it may issue from.
    programme_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    cap_per_issuance: Mapped[Decimal | None] = mapped_column(TokenAmount)  # None: the budget
    daily_budget: Mapped[Decimal] = mapped_column(TokenAmount)
    monthly_budget: Mapped[Decimal | None] = mapped_column(TokenAmount)  # None: no monthly limit
    # Mirrors the URL of its webhooks endpoint (owner api_service:<id>, set in the console's
    # Webhooks section); the endpoint is what the webhooks worker sends to.
    webhook_url: Mapped[str] = mapped_column(String(500), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the CLI
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Touched by every key change: the row lock that serialises rotations.
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def name(self, locale: str | None) -> str:
        return self.name_ja if (locale or "ja").startswith("ja") else self.name_en


class ServiceApiKey(Base):
    """An API key: `fur_<prefix>_<secret>`; the prefix finds the row, the secret's SHA-256 is
    compared in constant time."""

    __tablename__ = "service_api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_account_id: Mapped[int] = mapped_column(ForeignKey("service_accounts.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A rotation gives the old key an end; revoking ends it now.
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    def valid_at(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ServiceBudgetUsage(Base):
    """Points issued by a service in one JST day or month (period DAY or MONTH, `start` its
    first day)."""

    __tablename__ = "service_budget_usage"
    __table_args__ = (
        UniqueConstraint("service_account_id", "period", "start"),
        CheckConstraint("used >= 0", name="used_not_negative"),
        CheckConstraint("period IN ('day', 'month')", name="period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_account_id: Mapped[int] = mapped_column(ForeignKey("service_accounts.id"))
    period: Mapped[str] = mapped_column(String(8))
    start: Mapped[dt.date] = mapped_column()
    used: Mapped[Decimal] = mapped_column(TokenAmount, default=Decimal(0))


class ApiIssuance(Base):
    __tablename__ = "api_issuances"
    __table_args__ = (
        UniqueConstraint("service_account_id", "idempotency_key"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_api_issuances_service_id", "service_account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_account_id: Mapped[int] = mapped_column(ForeignKey("service_accounts.id"))
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the request's canonical body: the same key with another body is a conflict.
    request_sha256: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(300))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    programme_id: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    batch_id: Mapped[int] = mapped_column(ForeignKey("issuance_batches.id"), index=True)
    row_id: Mapped[int] = mapped_column(ForeignKey("issuance_rows.id"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The last state announced to the service (events.py): each state is announced once.
    announced: Mapped[str] = mapped_column(String(16), default="")

    def as_request(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "amount": int(self.amount),
            "programme": self.programme_id,
            "reason": self.reason,
        }


register_audit_town_table("service_account", ServiceAccount)
register_audit_town_table("api_issuance", ApiIssuance)
