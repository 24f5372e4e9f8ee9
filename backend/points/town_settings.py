"""A town's points settings, as its staff edit them in the console (issue 13 §2): programmes
(names, welcome amount, daily caps, expiry, active) and the transfer policy.

The chain holds a programme's (expiryDays, active) and the transfer policy; the town_settings
role key changes them (RegionPoints SETTINGS_ROLE, docs/adr/0012-town-settings-role.md) through
the outbox. Every change is a `PointsSettingChange` row, once per town and request key (the
form's one-time key), with an AuditLog row; its outbox call's state is what the console shows
(queued -> confirmed, or failed). Names, caps and the welcome amount live only here.

Rules checked here, before anything is written (InvalidInput, 400, nothing written):
- a programme's expiry is one of `programmes.expiry_choices(paid=...)`: a paid kind (points
  bought for money) never lives more than MAX_PAID_DAYS (資金決済法, the 6-month rule);
- amounts and caps are whole numbers from 1 to their maximum;
- only the town's staff may read or change them (Forbidden, 403).

Daily caps (`reserve_daily`): the points granted under a programme per JST day, per person and
per town, are counters (`points_daily_totals`, UNIQUE per town, programme, day and user; user 0
is the town) that a grant raises with a guarded UPDATE in its own transaction, so concurrent
grants can never pass a cap together (PostgreSQL's row lock, SQLite's write lock). A grant
whose issue failed on chain gives its amount back (`release_daily`, grant_failures.py).

A town deployed with the programme presets gets their rows the first time its programmes are
read (`ensure_seeded`); until then a grant uses the preset's defaults.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import ascii_int
from backend.core.times import JST
from backend.core.upsert import ensure_row
from backend.points.errors import DailyCapReached, PointsNotAvailable, ProgrammeNotFound
from backend.points.models import (
    SETTING_PROGRAMME,
    SETTING_TRANSFER_POLICY,
    PointsDailyTotal,
    PointsSettingChange,
    TownProgramme,
)
from backend.points.programmes import (
    MAX_PAID_DAYS,
    PRESETS,
    WELCOME,
    expiry_choices,
    kind,
)
from backend.regions.models import Town

ROLE_KEY = "town_settings"  # the role key holding RegionPoints SETTINGS_ROLE
# Who may read and change a town's points settings. When the town's admin role lands
# (backend/accounts/roles.py), it goes here (issue 13 §2: "town staff; ADMIN if it exists").
EDITORS = (STAFF,)
OPEN = "open"
MERCHANTS_ONLY = "merchants_only"
POLICIES = (OPEN, MERCHANTS_ONLY)  # RegionPoints.TransferPolicy, in enum order
MAX_WELCOME = 1_000_000  # points one welcome grant may give
MAX_CAP = 1_000_000_000  # a daily cap, in points
MAX_NAME = 120
_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")

INACTIVE = N_("This town does not give these points at the moment.")  # ProgrammeInactive

# Change states as the console shows them.
QUEUED = "queued"
CONFIRMED = "confirmed"
FAILED = "failed"
SAVED = "saved"  # an off-chain edit (names, caps, welcome amount): nothing to confirm
_OUTBOX_STATES = {
    "queued": QUEUED,
    "sent": QUEUED,
    "replaced": QUEUED,
    "confirmed": CONFIRMED,
    "reverted": FAILED,
    "cancelled": FAILED,
    "failed": FAILED,
}

# The names a preset's row starts with (a town renames them in the console).
PRESET_NAMES: dict[str, tuple[str, str]] = {
    "welcome": ("ウェルカムポイント", "Welcome points"),
    "purchase premium": ("プレミアムポイント", "Premium points"),
    "thank-you": ("サンクスポイント", "Thank-you points"),
    "event prize": ("イベント賞品ポイント", "Event prize points"),
}


@dataclass(frozen=True)
class ProgrammeView:
    row: TownProgramme
    paid: bool
    status: str  # QUEUED, CONFIRMED, FAILED (of its last on-chain change)
    on_chain: tuple[int, bool] | None = None  # (expiryDays, active) as last indexed

    @property
    def drift(self) -> bool:
        """The chain holds other values than the row although no change is on its way (a
        change made outside the console: see ADR 0012)."""
        return (
            self.status == CONFIRMED
            and self.on_chain is not None
            and self.on_chain != (self.row.expiry_days, self.row.active)
        )


@dataclass(frozen=True)
class PolicyView:
    on_chain: str  # OPEN or MERCHANTS_ONLY, as the indexer last saw it
    last_change: PointsSettingChange | None
    status: str | None  # of the last change (None: never changed from the console)

    @property
    def shown(self) -> str:
        """The policy the page shows: the last change's while it is on its way, else the
        chain's."""
        if self.last_change is not None and self.status in (QUEUED, CONFIRMED):
            return str(self.last_change.policy)
        return self.on_chain


def jst_day(at: dt.datetime) -> dt.date:
    return at.astimezone(JST).date()


def policy_on_chain(session: Session, town: Town) -> str:
    """The town's transfer policy (OPEN or MERCHANTS_ONLY) as the indexer last saw it."""
    if not town.points_address:
        return OPEN
    events = chain.indexed_events(
        session, town.chain_id, town.points_address, ["TransferPolicySet"]
    )
    return POLICIES[int(events[-1].args.get("policy", 0))] if events else OPEN


def town_programme(session: Session, town_id: int, programme_id: int) -> TownProgramme | None:
    """The town's row of a programme (None: not seeded or unknown)."""
    return session.scalar(
        select(TownProgramme).where(
            TownProgramme.town_id == town_id, TownProgramme.programme_id == programme_id
        )
    )


def _ensure_counter(session: Session, town_id: int, pid: int, day: dt.date, user_id: int) -> None:
    values = {"town_id": town_id, "programme_id": pid, "day": day, "user_id": user_id, "total": 0}
    keys = ["town_id", "programme_id", "day", "user_id"]
    ensure_row(session, PointsDailyTotal, values, keys)


def reserve_daily(
    session: Session,
    town_id: int,
    programme_id: int,
    user_id: int,
    amount: int,
    day: dt.date,
    programme: TownProgramme | None,
) -> None:
    """Add `amount` to the day's totals of the programme, the town's first and then the
    person's (one lock order), in the caller's transaction; DailyCapReached when a cap of
    `programme` would be passed (the caller rolls back: nothing is written)."""
    caps = (
        (0, programme.cap_per_town_day if programme else None),
        (user_id, programme.cap_per_person_day if programme else None),
    )
    for uid, cap in caps:
        _ensure_counter(session, town_id, programme_id, day, uid)
        stmt = (
            update(PointsDailyTotal)
            .where(
                PointsDailyTotal.town_id == town_id,
                PointsDailyTotal.programme_id == programme_id,
                PointsDailyTotal.day == day,
                PointsDailyTotal.user_id == uid,
            )
            .values(total=PointsDailyTotal.total + amount)
            .execution_options(synchronize_session=False)
        )
        if cap is not None:
            stmt = stmt.where(PointsDailyTotal.total + amount <= cap)
        if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
            if uid == 0:
                raise DailyCapReached(
                    N_("This programme has given all its points for today (%(cap)d a day)."),
                    cap=cap,
                )
            raise DailyCapReached(
                N_("You have received the most points this programme gives in a day (%(cap)d)."),
                cap=cap,
            )


def release_daily(
    session: Session, town_id: int, programme_id: int, user_id: int, amount: int, day: dt.date
) -> None:
    """Take `amount` off the day's totals that `reserve_daily` added it to (a grant whose issue
    failed gives back what it never issued), in the caller's transaction and the same lock
    order. Never below 0: a counter that is missing or lower (rows written before the
    reservation was kept) is left at what it can give."""
    for uid in (0, user_id):
        session.execute(
            update(PointsDailyTotal)
            .where(
                PointsDailyTotal.town_id == town_id,
                PointsDailyTotal.programme_id == programme_id,
                PointsDailyTotal.day == day,
                PointsDailyTotal.user_id == uid,
            )
            .values(
                total=case(
                    (PointsDailyTotal.total >= amount, PointsDailyTotal.total - amount), else_=0
                )
            )
            .execution_options(synchronize_session=False)
        )


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
        raise InvalidInput(
            N_("Enter a name of 1 to %(max)d characters."), field=field, max=MAX_NAME
        )
    if "\x00" in value:
        raise InvalidInput(
            N_("Enter a name of 1 to %(max)d characters."), field=field, max=MAX_NAME
        )
    return value.strip()


def _whole(value: object, field: str, maximum: int, *, optional: bool) -> int | None:
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    n = ascii_int(value)
    if n is None or not 1 <= n <= maximum:
        raise InvalidInput(N_("Enter a whole number from 1 to %(max)d."), field=field, max=maximum)
    return n


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "on", "yes")


def _expiry(value: object, paid: bool) -> int:
    days = ascii_int(value)
    if paid and days is not None and (days == 0 or days > MAX_PAID_DAYS):
        raise InvalidInput(
            N_(
                "Points bought for money must expire within %(max)d days "
                "(Payment Services Act, the 6-month rule)."
            ),
            field="expiry_days",
            max=MAX_PAID_DAYS,
        )
    if days is None or days not in expiry_choices(paid=paid):
        raise InvalidInput(N_("Choose one of the offered expiry periods."), field="expiry_days")
    return days


def check_request_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise InvalidInput(
            N_("This form has expired. Reload the page and try again."), field="idempotency_key"
        )
    return value


class TownSettingsService:
    """The console's programmes and transfer policy of a town, over one DB session."""

    def __init__(
        self,
        session: Session,
        outbox: Callable[[], OutboxService] | None = None,
        *,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._outbox = outbox or chain.outbox_service
        self._now = now

    # ------------------------------------------------------------------ reading

    def ensure_seeded(self, town: Town) -> None:
        """Give a town without programme rows one per deployed preset (as deploy set them)."""
        exists = self.session.scalar(
            select(TownProgramme.id).where(TownProgramme.town_id == town.id).limit(1)
        )
        if exists is not None:
            return
        try:
            with self.session.begin_nested():
                for p in PRESETS:
                    ja, en = PRESET_NAMES.get(p.name, (p.name, p.name))
                    self.session.add(
                        TownProgramme(
                            town_id=town.id,
                            programme_id=p.programme_id,
                            kind=p.name,
                            name_ja=ja,
                            name_en=en,
                            welcome_amount=p.grant.amount if p is WELCOME and p.grant else None,
                            expiry_days=p.expiry_days,
                            active=True,
                        )
                    )
            self.session.commit()
        except IntegrityError:  # another request seeded them first
            self.session.rollback()

    def programmes(self, actor: User | None, town: Town) -> list[ProgrammeView]:
        """The town's programmes with the state of their last on-chain change. STAFF only."""
        require_town_role(actor, town.id, *EDITORS)
        return self.programme_views(town)

    def programme_views(self, town: Town) -> list[ProgrammeView]:
        """`programmes` for a caller that has authorised otherwise (e.g. a service's API key:
        backend/integrations)."""
        self.ensure_seeded(town)
        rows = list(
            self.session.scalars(
                select(TownProgramme)
                .where(TownProgramme.town_id == town.id)
                .order_by(TownProgramme.programme_id)
            )
        )
        last = self._last_changes(town.id, SETTING_PROGRAMME)
        states = self._states([c for c in last.values()])
        chain_values = self._indexed_programmes(town)
        out = []
        for r in rows:
            change = last.get(r.programme_id)
            preset = kind(r.kind)
            out.append(
                ProgrammeView(
                    r,
                    bool(preset and preset.paid),
                    states.get(change.id, CONFIRMED) if change else CONFIRMED,
                    chain_values.get(r.programme_id),
                )
            )
        return out

    def _indexed_programmes(self, town: Town) -> dict[int, tuple[int, bool]]:
        """Each programme's (expiryDays, active) from the last indexed ProgrammeSet."""
        if not town.points_address:
            return {}
        out: dict[int, tuple[int, bool]] = {}
        for ev in chain.indexed_events(
            self.session, town.chain_id, town.points_address, ["ProgrammeSet"]
        ):
            out[int(ev.args["programmeId"])] = (
                int(ev.args["expiryDays"]),
                bool(ev.args["active"]),
            )
        return out

    def programme(self, actor: User | None, town: Town, programme_id: int) -> ProgrammeView:
        for v in self.programmes(actor, town):
            if v.row.programme_id == programme_id:
                return v
        raise ProgrammeNotFound(N_("There is no such programme."))

    def transfer_policy(self, actor: User | None, town: Town) -> PolicyView:
        """The policy on chain (as indexed) and the console's last change with its state."""
        require_town_role(actor, town.id, *EDITORS)
        on_chain = policy_on_chain(self.session, town)
        last = self.session.scalar(
            select(PointsSettingChange)
            .where(
                PointsSettingChange.town_id == town.id,
                PointsSettingChange.setting == SETTING_TRANSFER_POLICY,
            )
            .order_by(PointsSettingChange.id.desc())
            .limit(1)
        )
        status = self._states([last]).get(last.id) if last else None
        return PolicyView(on_chain, last, status)

    def change_status(self, change: PointsSettingChange) -> str:
        return self._states([change]).get(change.id, SAVED)

    def _last_changes(self, town_id: int, setting: str) -> dict[int, PointsSettingChange]:
        """The last on-chain change of each programme."""
        rows = self.session.scalars(
            select(PointsSettingChange)
            .where(
                PointsSettingChange.town_id == town_id,
                PointsSettingChange.setting == setting,
                PointsSettingChange.outbox_tx_id.is_not(None),
            )
            .order_by(PointsSettingChange.id)
        )
        return {int(c.programme_id or 0): c for c in rows}

    def _states(self, changes: list[PointsSettingChange]) -> dict[int, str]:
        ids = {c.outbox_tx_id: c.id for c in changes if c.outbox_tx_id is not None}
        found = chain.outbox_states(self.session, ids)
        out = {c.id: SAVED for c in changes if c.outbox_tx_id is None}
        for tx_id, change_id in ids.items():
            state = found.get(tx_id)
            out[change_id] = _OUTBOX_STATES.get(state.state, QUEUED) if state else QUEUED
        return out

    # ------------------------------------------------------------------ writing

    def _replay(self, town_id: int, key: str) -> PointsSettingChange | None:
        return self.session.scalar(
            select(PointsSettingChange).where(
                PointsSettingChange.town_id == town_id, PointsSettingChange.request_key == key
            )
        )

    def _staff(self, actor: User | None, town: Town) -> User:
        user = require_town_role(actor, town.id, *EDITORS)
        if not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        return user

    def create_programme(
        self, actor: User | None, town: Town, form: Mapping[str, Any], request_key: object
    ) -> PointsSettingChange:
        """A new programme of a kind (PRESETS), on chain through setProgramme. A replayed
        request key returns the first change and writes nothing."""
        user = self._staff(actor, town)
        key = check_request_key(request_key)
        if (first := self._replay(town.id, key)) is not None:
            return first
        preset = kind(str(form.get("kind", "")))
        if preset is None:
            raise InvalidInput(N_("Choose a kind of programme."), field="kind")
        if preset is WELCOME:
            raise InvalidInput(
                N_("A town has one welcome programme: edit it instead."), field="kind"
            )
        values = self._values(form, preset.name, preset.paid)
        self.ensure_seeded(town)
        for _ in range(3):  # two creations at once may pick the same id: the UNIQUE decides
            top = self.session.scalar(
                select(func.max(TownProgramme.programme_id)).where(TownProgramme.town_id == town.id)
            )
            pid = max(int(top or 0), *(p.programme_id for p in PRESETS)) + 1
            row = TownProgramme(town_id=town.id, programme_id=pid, kind=preset.name, **values)
            try:
                self.session.add(row)
                self.session.flush()
                return self._record(user, town, key, row, "points.programme_create", on_chain=True)
            except IntegrityError:
                self.session.rollback()
                if (first := self._replay(town.id, key)) is not None:
                    return first
        raise InvalidInput(N_("Please try again."), field="kind")

    def update_programme(
        self,
        actor: User | None,
        town: Town,
        programme_id: int,
        form: Mapping[str, Any],
        request_key: object,
    ) -> PointsSettingChange:
        """Edit a programme: names, welcome amount and caps here; expiry and active also on
        chain (setProgramme) when they change."""
        user = self._staff(actor, town)
        key = check_request_key(request_key)
        if (first := self._replay(town.id, key)) is not None:
            return first
        self.ensure_seeded(town)
        row = town_programme(self.session, town.id, programme_id)
        if row is None:
            raise ProgrammeNotFound(N_("There is no such programme."))
        preset = kind(row.kind)
        values = self._values(form, row.kind, bool(preset and preset.paid))
        on_chain = (values["expiry_days"], values["active"]) != (row.expiry_days, row.active)
        last = self._last_changes(town.id, SETTING_PROGRAMME).get(programme_id)
        last_state = self._states([last]).get(last.id) if last is not None else CONFIRMED
        if last_state == FAILED:
            on_chain = True  # the chain refused the last change: saving again retries it
        indexed = self._indexed_programmes(town).get(programme_id)
        wanted = (values["expiry_days"], values["active"])
        if last_state == CONFIRMED and indexed is not None and indexed != wanted:
            on_chain = True  # the chain drifted from the console: saving sets it back
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = self._now()
        try:
            return self._record(user, town, key, row, "points.programme_update", on_chain=on_chain)
        except IntegrityError:
            self.session.rollback()
            if (first := self._replay(town.id, key)) is not None:
                return first
            raise

    def set_transfer_policy(
        self, actor: User | None, town: Town, policy: object, request_key: object
    ) -> PointsSettingChange:
        """Open or merchants-only, on chain through setTransferPolicy."""
        user = self._staff(actor, town)
        key = check_request_key(request_key)
        if (first := self._replay(town.id, key)) is not None:
            return first
        if policy not in POLICIES:
            raise InvalidInput(N_("Choose open or merchants only."), field="policy")
        change = PointsSettingChange(
            town_id=town.id,
            request_key=key,
            setting=SETTING_TRANSFER_POLICY,
            policy=str(policy),
            actor_id=user.id,
        )
        try:
            self.session.add(change)
            self.session.flush()
            tx = self._outbox().enqueue(
                self.session,
                ContractCall(
                    str(town.points_address),
                    "setTransferPolicy",
                    (POLICIES.index(str(policy)),),
                    artifact_name="RegionPoints",
                ),
                sender=Sender.role(ROLE_KEY, town_id=town.id),
                key=f"points.policy:{town.id}:{key}",
                subject=Subject("points_setting_change", change.id),
                audit=AuditEntry(
                    actor=f"user:{user.id}",
                    action="points.transfer_policy",
                    subject_type="town",
                    subject_id=str(town.id),
                    reason="transfer policy set by town staff",
                    details={"policy": policy, "change_id": change.id},
                ),
            )
            change.outbox_tx_id = tx.id
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            if (first := self._replay(town.id, key)) is not None:
                return first
            raise
        except Exception:
            self.session.rollback()
            raise
        return change

    def _values(self, form: Mapping[str, Any], kind_name: str, paid: bool) -> dict[str, Any]:
        welcome = kind_name == WELCOME.name
        return {
            "name_ja": _text(form.get("name_ja"), "name_ja"),
            "name_en": _text(form.get("name_en"), "name_en"),
            "welcome_amount": _whole(
                form.get("welcome_amount"), "welcome_amount", MAX_WELCOME, optional=False
            )
            if welcome
            else None,
            "cap_per_person_day": _whole(
                form.get("cap_per_person_day"), "cap_per_person_day", MAX_CAP, optional=True
            ),
            "cap_per_town_day": _whole(
                form.get("cap_per_town_day"), "cap_per_town_day", MAX_CAP, optional=True
            ),
            "expiry_days": _expiry(form.get("expiry_days"), paid),
            "active": _flag(form.get("active", False)),
        }

    def _record(
        self,
        user: User,
        town: Town,
        key: str,
        row: TownProgramme,
        action: str,
        *,
        on_chain: bool,
    ) -> PointsSettingChange:
        """The change row, its outbox call (when on chain) and its audit row; commits."""
        change = PointsSettingChange(
            town_id=town.id,
            request_key=key,
            setting=SETTING_PROGRAMME,
            programme_id=row.programme_id,
            expiry_days=row.expiry_days,
            active=row.active,
            actor_id=user.id,
        )
        details = {
            "programme_id": row.programme_id,
            "kind": row.kind,
            "name_ja": row.name_ja,
            "name_en": row.name_en,
            "welcome_amount": row.welcome_amount,
            "cap_per_person_day": row.cap_per_person_day,
            "cap_per_town_day": row.cap_per_town_day,
            "expiry_days": row.expiry_days,
            "active": row.active,
        }
        try:
            self.session.add(change)
            self.session.flush()
            details["change_id"] = change.id
            audit = AuditEntry(
                actor=f"user:{user.id}",
                action=action,
                subject_type="town",
                subject_id=str(town.id),
                reason="points programme set by town staff",
                details=details,
            )
            if on_chain:
                tx = self._outbox().enqueue(
                    self.session,
                    ContractCall(
                        str(town.points_address),
                        "setProgramme",
                        (row.programme_id, row.expiry_days, row.active),
                        artifact_name="RegionPoints",
                    ),
                    sender=Sender.role(ROLE_KEY, town_id=town.id),
                    key=f"points.programme:{town.id}:{key}",
                    subject=Subject("points_setting_change", change.id),
                    audit=audit,
                )
                change.outbox_tx_id = tx.id
            else:
                self.session.add(
                    AuditLog(
                        actor=audit.actor,
                        action=audit.action,
                        subject_type=audit.subject_type,
                        subject_id=audit.subject_id,
                        reason=audit.reason,
                        details=audit.details,
                    )
                )
            self.session.commit()
        except IntegrityError:
            raise
        except Exception:
            self.session.rollback()
            raise
        return change


def town_settings_service() -> TownSettingsService:
    """A TownSettingsService for the current app and request."""
    return TownSettingsService(get_db().session(), chain.outbox_service)
