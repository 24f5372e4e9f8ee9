"""Points tables: a per-holder ledger projected from RegionPoints events, and the points the
platform grants by itself (welcome points today; backend/points/programmes.py says which kinds).

`PointsEntry` rows are written only by the indexer handlers (backend/points/handlers.py), in the
indexing transaction, and removed by their revert hooks on a reorg: the chain is the truth.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.core.db import Base, utcnow
from backend.core.models import TokenAmount

ISSUED = "issued"
PAID = "paid"
RECEIVED = "received"
REDEEMED = "redeemed"
EXPIRED = "expired"
KINDS = (ISSUED, PAID, RECEIVED, REDEEMED, EXPIRED)

GRANT_PENDING = "pending"
GRANT_CONFIRMED = "confirmed"
# The grant's issue call failed on chain (failed, reverted or cancelled): stored by
# backend/points/grant_failures.py, which gives its daily-cap reservation back; town staff send
# it again from the console (a new outbox call, the grant's `attempts` + 1).
GRANT_FAILED = "failed"


class PointsEntry(Base):
    """One confirmed movement of one holder's points (a transfer is two entries)."""

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index", "holder", "kind"),
        Index("ix_points_entries_contract_holder", "contract_address", "holder"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(String(42))
    holder: Mapped[str] = mapped_column(String(42))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    counterparty: Mapped[str | None] = mapped_column(String(42))
    programme_id: Mapped[int | None] = mapped_column()
    reason: Mapped[str] = mapped_column(Text, default="")
    # When an issued lot expires (00:00 JST of its expiry day); None: never.
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    block_number: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), index=True)
    log_index: Mapped[int] = mapped_column()
    # The outbox row that sent the transaction, when the platform sent it.
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PointsGrant(Base):
    """Points of one programme kind the platform granted one user in one town: at most one per
    user, town, programme and grant key. The UNIQUE constraint is the idempotency guard (money
    safety: two concurrent grants of welcome points insert one row, the other call finds it).
    A kind granted once per user (welcome) uses the grant key ""; a kind granted repeatedly
    would name each occasion by its key.

    The row stays the one grant however many times its issue is sent: `outbox_tx_id` is the
    latest call (the first under the programme's key, each retry under
    `points.grant:<id>:<attempt>`), `attempts` how many calls were queued."""

    __tablename__ = "points_grants"
    __table_args__ = (UniqueConstraint("user_id", "town_id", "programme_id", "grant_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    programme_id: Mapped[int] = mapped_column()
    grant_key: Mapped[str] = mapped_column(String(64), default="", server_default="")
    amount: Mapped[Decimal] = mapped_column(TokenAmount)
    address: Mapped[str] = mapped_column(String(42))
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default=GRANT_PENDING)
    # The on-chain reason string of its issue (Programme.reason): a retry sends the same call.
    reason: Mapped[str] = mapped_column(String(64), default="", server_default="")
    attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    # The JST day whose daily-cap counters hold this grant's amount; None once a failure gave
    # it back (a retry reserves on the day it is sent).
    reserved_day: Mapped[dt.date | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column()


class TownProgramme(Base):
    """One points programme of one town, as its staff edit it in the console (issue 13 §2):
    the on-chain programme id, its kind (backend/points/programmes.py PRESETS names), names,
    the welcome amount (welcome kind), daily caps, expiry and whether it is active. The chain
    holds (expiry_days, active) (RegionPoints.setProgramme); every change of those is a
    `PointsSettingChange` with its outbox call."""

    __tablename__ = "points_programmes"
    __table_args__ = (UniqueConstraint("town_id", "programme_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    programme_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    name_ja: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    welcome_amount: Mapped[int | None] = mapped_column(BigInteger)
    cap_per_person_day: Mapped[int | None] = mapped_column(BigInteger)  # None: no cap
    cap_per_town_day: Mapped[int | None] = mapped_column(BigInteger)
    expiry_days: Mapped[int] = mapped_column()  # 0: never (free kinds only)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def name(self, locale: str | None) -> str:
        return self.name_ja if (locale or "ja").startswith("ja") else self.name_en


SETTING_PROGRAMME = "programme"
SETTING_TRANSFER_POLICY = "transfer_policy"


class PointsSettingChange(Base):
    """One change a town's staff made to a points setting (a programme, the transfer policy),
    at most once per town and request key (the form's one-time key: a replayed form changes
    nothing). `outbox_tx_id` is the setProgramme / setTransferPolicy call when the change goes
    on chain (None for an off-chain edit: names, caps, welcome amount); its outbox state is
    the change's queued -> confirmed state."""

    __tablename__ = "points_setting_changes"
    __table_args__ = (UniqueConstraint("town_id", "request_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    request_key: Mapped[str] = mapped_column(String(64))
    setting: Mapped[str] = mapped_column(String(32))
    programme_id: Mapped[int | None] = mapped_column(BigInteger)
    expiry_days: Mapped[int | None] = mapped_column()
    active: Mapped[bool | None] = mapped_column()
    policy: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    outbox_tx_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PointsDailyTotal(Base):
    """Points granted under one programme of one town on one JST day, to one user
    (`user_id`) or to everyone (`user_id` 0): the counters the daily caps are checked
    against. A grant adds to both with a guarded UPDATE (`total + amount <= cap`), in the
    grant's transaction, so concurrent grants never pass a cap together."""

    __tablename__ = "points_daily_totals"
    __table_args__ = (UniqueConstraint("town_id", "programme_id", "day", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"))
    programme_id: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[dt.date] = mapped_column()
    user_id: Mapped[int] = mapped_column()  # 0: the whole town
    total: Mapped[int] = mapped_column(BigInteger, default=0)
