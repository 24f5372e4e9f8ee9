"""Service accounts and their API keys (issue 14 §1).

The town's ADMIN registers a service (names ja/en, the programmes it may issue from, a cap per
issuance, a daily and an optional monthly budget); its webhook URL and signing secret are set
in the console's Webhooks section (the webhooks domain, ADR 0020). The command
`flask --app backend services create` does the same for operators (`create(None, ...,
cli=True)`). Its first key is made with it.

Keys (keys.py): shown once, stored as a prefix and the SHA-256 of their secret. `rotate` makes
a new key and gives the old one an end (ROTATION_GRACE): both are valid until then, so the
service can change its configuration without a gap; at most two keys are valid at once.
`revoke` ends a key now. Every change is audited; a change of keys locks the service's row
first (one UPDATE), so two rotations at once cannot leave three valid keys.

Every public method commits what it changed, or raises an AppError and writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import ADMIN, require_town_role
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import ascii_int, db_id_or_none
from backend.integrations import budgets
from backend.integrations import keys as api_keys
from backend.integrations.errors import InvalidApiKey, RotationInProgress, ServiceNotFound
from backend.integrations.models import ServiceAccount, ServiceApiKey
from backend.issuing.for_services import ServiceIssuing, service_issuing
from backend.regions.models import Town

ROTATION_GRACE = dt.timedelta(days=7)  # how long the old key stays valid after a rotation
MAX_NAME = 120
MAX_BUDGET = 10**12  # points: far above any town's issuance, far below uint256
MAX_URL = 500


@dataclass(frozen=True)
class NewKey:
    """A key just made: `text` is the whole key, shown once and never stored."""

    row: ServiceApiKey
    text: str


def _name(value: object, field: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_NAME or "\x00" in text:
        raise InvalidInput(
            N_("Enter a name of 1 to %(max)d characters."), field=field, max=MAX_NAME
        )
    return text


def _points(value: object, field: str, *, optional: bool) -> int | None:
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    n = value if isinstance(value, int) and not isinstance(value, bool) else ascii_int(value)
    if n is None or not 1 <= n <= MAX_BUDGET:
        raise InvalidInput(
            N_("Enter a whole number of points from 1 to %(max)d."), field=field, max=MAX_BUDGET
        )
    return int(n)


def _limits_of(account: ServiceAccount) -> dict[str, Any]:
    return {
        "name_ja": account.name_ja,
        "name_en": account.name_en,
        "programme_ids": list(account.programme_ids),
        "daily_budget": int(account.daily_budget),
        "monthly_budget": int(account.monthly_budget) if account.monthly_budget else None,
        "cap_per_issuance": int(account.cap_per_issuance) if account.cap_per_issuance else None,
        "active": bool(account.active),
    }


class ServiceAccountService:
    """Service accounts and keys over one DB session; `issuing` tells which programmes a town
    may issue from."""

    def __init__(
        self,
        session: Session,
        *,
        issuing: ServiceIssuing,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.issuing = issuing
        self._now = now

    # ------------------------------------------------------------------ reading

    def accounts(self, actor: User | None, town: Town) -> list[ServiceAccount]:
        """The town's services, oldest first (the town's ADMIN only)."""
        require_town_role(actor, town.id, ADMIN)
        return list(
            self.session.scalars(
                select(ServiceAccount)
                .where(ServiceAccount.town_id == town.id)
                .order_by(ServiceAccount.id)
            )
        )

    def account(self, actor: User | None, town: Town, service_id: object) -> ServiceAccount:
        require_town_role(actor, town.id, ADMIN)
        i = db_id_or_none(service_id)
        found = self.session.get(ServiceAccount, i) if i else None
        if found is None or found.town_id != town.id:
            raise ServiceNotFound(N_("There is no such service."))
        return found

    def keys(self, account: ServiceAccount) -> list[ServiceApiKey]:
        """The service's keys, newest first (revoked and expired ones too)."""
        return list(
            self.session.scalars(
                select(ServiceApiKey)
                .where(ServiceApiKey.service_account_id == account.id)
                .order_by(ServiceApiKey.id.desc())
            )
        )

    def usage(self, account: ServiceAccount) -> budgets.Usage:
        """Points the service issued this JST day and month."""
        return budgets.usage(self.session, account, self._now())

    def valid_keys(self, account: ServiceAccount) -> list[ServiceApiKey]:
        now = self._now()
        return [k for k in self.keys(account) if k.valid_at(now)]

    def programme_choices(self, actor: User | None, town: Town) -> list[Any]:
        """The programmes a service of the town may be allowed (ADMIN only)."""
        require_town_role(actor, town.id, ADMIN)
        return list(self.issuing.issuable_programmes(town))

    # ------------------------------------------------------------------ changing

    def create(
        self,
        actor: User | None,
        town: Town,
        *,
        name_ja: object,
        name_en: object,
        programme_ids: Iterable[object],
        daily_budget: object,
        monthly_budget: object = None,
        cap_per_issuance: object = None,
        cli: bool = False,
    ) -> tuple[ServiceAccount, NewKey]:
        """A new service of the town with its first key (the town's ADMIN; `cli` for the
        operators' command, audited as "system:cli"). InvalidInput for a bad field: nothing
        written."""
        if not cli:
            actor = require_town_role(actor, town.id, ADMIN)
        limits = self._limits(
            town, name_ja, name_en, programme_ids, daily_budget, monthly_budget, cap_per_issuance
        )
        ja, en, chosen, daily, monthly, cap = limits
        who = f"user:{actor.id}" if actor is not None else "system:cli"
        account = ServiceAccount(
            town_id=town.id,
            name_ja=ja,
            name_en=en,
            programme_ids=chosen,
            cap_per_issuance=Decimal(cap) if cap is not None else None,
            daily_budget=Decimal(daily),
            monthly_budget=Decimal(monthly) if monthly is not None else None,
            created_by=actor.id if actor is not None else None,
            created_at=self._now(),
            updated_at=self._now(),
        )
        self.session.add(account)
        try:
            self.session.flush()
        except IntegrityError:
            self.session.rollback()
            raise InvalidInput(
                N_("The town has a service with this English name already."), field="name_en"
            ) from None
        try:
            new = self._new_key(account, actor)
            self._audit(
                who,
                account,
                "services.create",
                programme_ids=chosen,
                daily_budget=daily,
                monthly_budget=monthly,
                cap_per_issuance=cap,
                key_prefix=new.row.prefix,
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return account, new

    def update(
        self,
        actor: User | None,
        town: Town,
        service_id: object,
        *,
        name_ja: object,
        name_en: object,
        programme_ids: Iterable[object],
        daily_budget: object,
        monthly_budget: object = None,
        cap_per_issuance: object = None,
        active: bool = True,
    ) -> ServiceAccount:
        """Change a service's names, programmes, cap, budgets, or suspend it (`active`
        False: its keys answer 401 until it is active again). Checked as `create`; audited with
        the values before and after. A budget lowered below today's use refuses what follows."""
        account = self.account(actor, town, service_id)
        assert actor is not None
        ja, en, chosen, daily, monthly, cap = self._limits(
            town, name_ja, name_en, programme_ids, daily_budget, monthly_budget, cap_per_issuance
        )
        before = _limits_of(account)
        try:
            self._lock(account)
            account.name_ja, account.name_en, account.programme_ids = ja, en, chosen
            account.daily_budget = Decimal(daily)
            account.monthly_budget = Decimal(monthly) if monthly is not None else None
            account.cap_per_issuance = Decimal(cap) if cap is not None else None
            account.active = bool(active)
            self.session.flush()
            after = _limits_of(account)
            if after != before:
                self._audit(
                    f"user:{actor.id}", account, "services.update", before=before, after=after
                )
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            raise InvalidInput(
                N_("The town has a service with this English name already."), field="name_en"
            ) from None
        except Exception:
            self.session.rollback()
            raise
        return account

    def _limits(
        self,
        town: Town,
        name_ja: object,
        name_en: object,
        programme_ids: Iterable[object],
        daily_budget: object,
        monthly_budget: object,
        cap_per_issuance: object,
    ) -> tuple[str, str, list[int], int, int | None, int | None]:
        """The checked fields of a service (InvalidInput naming the first bad one)."""
        ja, en = _name(name_ja, "name_ja"), _name(name_en, "name_en")
        daily = _points(daily_budget, "daily_budget", optional=False)
        monthly = _points(monthly_budget, "monthly_budget", optional=True)
        cap = _points(cap_per_issuance, "cap_per_issuance", optional=True)
        if monthly is not None and daily is not None and monthly < daily:
            raise InvalidInput(
                N_("The monthly budget cannot be less than the daily budget."),
                field="monthly_budget",
            )
        allowed = {p.programme_id for p in self.issuing.issuable_programmes(town)}
        chosen = sorted({db_id_or_none(p) or 0 for p in programme_ids})
        if not chosen or any(p not in allowed for p in chosen):
            raise InvalidInput(
                N_("Choose at least one of the town's programmes."), field="programme_ids"
            )
        return ja, en, chosen, int(daily or 0), monthly, cap

    def rotate(self, actor: User | None, town: Town, service_id: object) -> NewKey:
        """A new key; the key valid until now stays valid for ROTATION_GRACE. Refused
        (RotationInProgress) while two keys are valid."""
        account = self.account(actor, town, service_id)
        assert actor is not None
        try:
            now = self._lock(account)
            valid = [k for k in self.keys(account) if k.valid_at(now)]
            if len(valid) >= 2:
                raise RotationInProgress(
                    N_("Two keys are valid already: revoke the old key before rotating again.")
                )
            for k in valid:
                k.expires_at = now + ROTATION_GRACE
            new = self._new_key(account, actor)
            self._audit(
                f"user:{actor.id}",
                account,
                "services.key.rotate",
                key_prefix=new.row.prefix,
                old_keys=[k.prefix for k in valid],
                old_valid_until=(now + ROTATION_GRACE).isoformat(),
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return new

    def revoke(self, actor: User | None, town: Town, service_id: object, key_id: object) -> None:
        """End a key now (revoking a revoked key changes nothing)."""
        account = self.account(actor, town, service_id)
        assert actor is not None
        i = db_id_or_none(key_id)
        key = self.session.get(ServiceApiKey, i) if i else None
        if key is None or key.service_account_id != account.id:
            raise ServiceNotFound(N_("There is no such key."))
        if key.revoked_at is not None:
            return
        try:
            now = self._lock(account)
            key.revoked_at, key.revoked_by = now, actor.id
            self._audit(f"user:{actor.id}", account, "services.key.revoke", key_prefix=key.prefix)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise

    # ------------------------------------------------------------------ authenticating

    def authenticate(self, authorization: str | None) -> tuple[ServiceAccount, ServiceApiKey]:
        """The service of an `Authorization: Bearer <key>` header; InvalidApiKey (401) for
        no key, a wrong one, a revoked or expired one, or a suspended service."""
        parts = api_keys.from_authorization(authorization)
        key = (
            self.session.scalar(select(ServiceApiKey).where(ServiceApiKey.prefix == parts.prefix))
            if parts is not None
            else None
        )
        # The digest is compared even for an unknown prefix: the time taken says nothing.
        stored = key.secret_sha256 if key is not None else "0" * 64
        ok = api_keys.matches(parts.secret if parts else "", stored) and key is not None
        now = self._now()
        if not ok or key is None or not key.valid_at(now):
            raise InvalidApiKey(
                N_("This API key is not valid (missing, wrong, revoked or expired).")
            )
        account = self.session.get(ServiceAccount, key.service_account_id)
        if account is None or not account.active:
            raise InvalidApiKey(
                N_("This API key is not valid (missing, wrong, revoked or expired).")
            )
        return account, key

    # ------------------------------------------------------------------ helpers

    def _lock(self, account: ServiceAccount) -> dt.datetime:
        """Take the service row's write lock (PostgreSQL row lock, SQLite write lock)."""
        now = self._now()
        self.session.execute(
            update(ServiceAccount)
            .where(ServiceAccount.id == account.id)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
        self.session.expire_all()
        return now

    def _new_key(self, account: ServiceAccount, actor: User | None) -> NewKey:
        text, parts = api_keys.new_key()
        row = ServiceApiKey(
            service_account_id=account.id,
            prefix=parts.prefix,
            secret_sha256=api_keys.digest(parts.secret),
            created_by=actor.id if actor is not None else None,
            created_at=self._now(),
        )
        self.session.add(row)
        self.session.flush()
        return NewKey(row, text)

    def _audit(self, actor: str, account: ServiceAccount, action: str, **details: Any) -> None:
        self.session.add(
            AuditLog(
                actor=actor,
                action=action,
                subject_type="service_account",
                subject_id=str(account.id),
                details={"town_id": account.town_id, "name_en": account.name_en, **details},
            )
        )


def service_account_service() -> ServiceAccountService:
    """A ServiceAccountService for the current app and request."""
    return ServiceAccountService(get_db().session(), issuing=service_issuing())
