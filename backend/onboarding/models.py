"""Onboarding's tables: a town's setup and its steps (one per transaction, ADR 0012), the
platform operators, and the one-time sign-in links that invite a town's first admin."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.core.db import Base, utcnow

# A setup: running (steps being sent), failed (a step failed: retry it), live (town row made).
RUNNING, FAILED, LIVE = "running", "failed", "live"
SETUP_STATES = (RUNNING, FAILED, LIVE)
# A step: waiting (for the steps it needs), queued / sent (its outbox row), confirmed, failed.
WAITING, QUEUED, SENT, CONFIRMED = "waiting", "queued", "sent", "confirmed"
STEP_STATES = (WAITING, QUEUED, SENT, CONFIRMED, FAILED)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class TownSetup(Base):
    """One town being onboarded: what the operator asked for and where it stands."""

    __tablename__ = "town_setups"
    __table_args__ = (CheckConstraint(_in("state", SETUP_STATES), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    prefecture_ja: Mapped[str] = mapped_column(String(60), default="")
    prefecture_en: Mapped[str] = mapped_column(String(60), default="")
    points_symbol: Mapped[str] = mapped_column(String(16))
    admin_email: Mapped[str | None] = mapped_column(String(254))
    chain_id: Mapped[int] = mapped_column()
    state: Mapped[str] = mapped_column(String(10), default=RUNNING)
    # The operator form's idempotency key (a double submit starts one setup).
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_by: Mapped[str] = mapped_column(String(80))  # "user:<id>" or "cli"
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    steps: Mapped[list[TownSetupStep]] = relationship(
        back_populates="setup", order_by="TownSetupStep.position", lazy="selectin"
    )


class TownSetupStep(Base):
    """One transaction of a setup; its outbox key is `town-setup:<slug>:<name>` (a retry adds
    `:retry<n>`), so running the setup again never sends a step twice."""

    __tablename__ = "town_setup_steps"
    __table_args__ = (
        UniqueConstraint("setup_id", "name"),
        CheckConstraint(_in("state", STEP_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    setup_id: Mapped[int] = mapped_column(
        ForeignKey("town_setups.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column()
    name: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(10), default=WAITING)
    outbox_key: Mapped[str | None] = mapped_column(String(200))
    outbox_tx_id: Mapped[int | None] = mapped_column()
    retries: Mapped[int] = mapped_column(default=0)
    address: Mapped[str | None] = mapped_column(String(42))  # what the step created, if any
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    setup: Mapped[TownSetup] = relationship(back_populates="steps")


class PlatformOperator(Base):
    """A person who runs the platform: may onboard towns (`flask --app backend operators add`)."""

    __tablename__ = "platform_operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TownInvite(Base):
    """A one-time sign-in link that makes its holder an admin of a town. Only the SHA-256 of
    the token is stored; it is used once (one conditional UPDATE) and expires."""

    __tablename__ = "town_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
    used_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
