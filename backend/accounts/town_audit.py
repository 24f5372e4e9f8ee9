"""The town's audit log for its console: filtered by actor, action and JST days, newest first,
paginated; exported as CSV by data staff only.

Rows belong to a town through audit_log.town_id (see backend/core/models.py AuditLog: set by
the writers that know their town, filled on insert from the row's details or subject, and
backfilled by migration 0027); platform-wide rows are in no town's log.

Who may do what: town STAFF (and admins) and DATA staff read the log; only DATA staff export it
(Forbidden otherwise), and the export itself writes an "audit.export" row. Every text cell of the
CSV goes through core.csv_safe: actors, reasons and details can hold text typed by people.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import DATA, STAFF, has_town_role, require_town_role
from backend.core.csv_safe import csv_cell
from backend.core.db import get_db
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.times import JST, jst_text
from backend.regions.models import Town

PER_PAGE = 50
EXPORT_MAX = 100_000  # rows in one CSV; narrow the filters for more
EXPORT = "audit.export"
_FIRST_DAY, _LAST_DAY = dt.date(1900, 1, 1), dt.date(9999, 12, 30)  # days a filter may name


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""  # an e-mail, or an actor as stored ("user:12", "system:outbox")
    action: str = ""  # an action or its prefix ("town.role" matches grant and revoke)
    start: dt.date | None = None  # JST days, both included
    end: dt.date | None = None

    def as_dict(self) -> dict[str, str]:
        return {
            "actor": self.actor,
            "action": self.action,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
        }


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: dt.datetime
    actor: str
    actor_email: str
    action: str
    subject: str
    amount: int | None
    reason: str
    details: dict[str, Any]

    @property
    def at_jst(self) -> str:
        return jst_text(self.at, seconds=True)  # as the page shows it (webui/times.py)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int
    page: int
    pages: int


def parse_filters(args: Any) -> AuditFilters:
    """Filters from a query string (actor, action, from, to); InvalidInput on a bad value."""
    actor = _text(args.get("actor"), 254, "actor")
    action = _text(args.get("action"), 60, "action")
    try:
        start = dt.date.fromisoformat(args["from"]) if args.get("from") else None
        end = dt.date.fromisoformat(args["to"]) if args.get("to") else None
    except (ValueError, TypeError):
        raise InvalidInput(N_("Dates must look like 2026-04-30."), field="from") from None
    for day, field in ((start, "from"), (end, "to")):
        # 0001-01-01 in JST is before UTC's first day and 9999-12-31 has no next day: both
        # overflowed (a 500) where the query turns JST days into UTC moments.
        if day is not None and not _FIRST_DAY <= day <= _LAST_DAY:
            raise InvalidInput(N_("Dates must look like 2026-04-30."), field=field)
    if start and end and end < start:
        raise InvalidInput(N_("The end date must not be before the start date."), field="to")
    return AuditFilters(actor.strip(), action.strip(), start, end)


def _text(value: object, limit: int, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(N_("This filter is too long."), field=field)
    return value


class TownAuditService:
    def __init__(self, session: Session) -> None:
        self.session = session

    def can_view(self, user: User | None, town: Town) -> bool:
        return has_town_role(user, town.id, STAFF, DATA)

    def can_export(self, user: User | None, town: Town) -> bool:
        return has_town_role(user, town.id, DATA)

    def page(
        self, actor: User | None, town: Town, filters: AuditFilters, page: object = 1
    ) -> AuditPage:
        """One page (PER_PAGE rows, newest first) of the town's audit rows. STAFF or DATA."""
        require_town_role(actor, town.id, STAFF, DATA)
        number = _page_number(page)
        query = self._query(town, filters)
        total = int(self.session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        pages = max(1, -(-total // PER_PAGE))
        number = min(number, pages)
        found = list(
            self.session.scalars(
                query.order_by(AuditLog.at.desc(), AuditLog.id.desc())
                .limit(PER_PAGE)
                .offset((number - 1) * PER_PAGE)
            )
        )
        return AuditPage(self._rows(found), total, number, pages)

    def export_csv(self, actor: User | None, town: Town, filters: AuditFilters) -> tuple[str, str]:
        """(file name, CSV text) of every row the filters select, newest first. DATA staff
        only; writes an "audit.export" row (who, which filters, how many rows)."""
        actor = require_town_role(actor, town.id, DATA)
        found = list(
            self.session.scalars(
                self._query(town, filters)
                .order_by(AuditLog.at.desc(), AuditLog.id.desc())
                .limit(EXPORT_MAX)
            )
        )
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(
            [
                "id",
                "at_jst",
                "actor",
                "actor_email",
                "action",
                "subject",
                "amount",
                "reason",
                "details",
            ]
        )
        for r in self._rows(found):
            w.writerow(
                [
                    r.id,
                    r.at_jst,
                    csv_cell(r.actor),
                    csv_cell(r.actor_email),
                    csv_cell(r.action),
                    csv_cell(r.subject),
                    r.amount if r.amount is not None else "",
                    csv_cell(r.reason),
                    csv_cell(json.dumps(r.details, ensure_ascii=False, sort_keys=True)),
                ]
            )
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action=EXPORT,
                subject_type="town",
                subject_id=str(town.id),
                reason="audit log exported as CSV by data staff",
                details={"town_id": town.id, "rows": len(found), **filters.as_dict()},
                town_id=town.id,
            )
        )
        self.session.commit()
        stamp = dt.datetime.now(JST).strftime("%Y%m%d-%H%M")
        return f"audit-{town.slug}-{stamp}.csv", out.getvalue()

    # ------------------------------------------------------------------ helpers

    def _query(self, town: Town, f: AuditFilters) -> Select[AuditLog]:
        q = select(AuditLog).where(AuditLog.town_id == town.id)
        if f.actor:
            q = q.where(AuditLog.actor == self._actor_key(f.actor))
        if f.action:
            pattern = f.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(
                (AuditLog.action == f.action)
                | AuditLog.action.like(pattern.rstrip(".") + ".%", escape="\\")
            )
        if f.start:
            q = q.where(AuditLog.at >= dt.datetime.combine(f.start, dt.time(), JST))
        if f.end:
            q = q.where(
                AuditLog.at < dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time(), JST)
            )
        return q

    def _actor_key(self, text: str) -> str:
        if "@" in text:
            user_id = self.session.scalar(select(User.id).where(User.email == text.lower()))
            return f"user:{user_id}" if user_id is not None else "user:none"
        return text

    def _rows(self, found: list[AuditLog]) -> list[AuditRow]:
        ids = {
            int(a.actor.split(":", 1)[1])
            for a in found
            if a.actor.startswith("user:") and a.actor.split(":", 1)[1].isdigit()
        }
        emails = (
            dict(self.session.execute(select(User.id, User.email).where(User.id.in_(ids))).all())
            if ids
            else {}
        )
        out = []
        for a in found:
            uid = a.actor.split(":", 1)[1] if a.actor.startswith("user:") else ""
            out.append(
                AuditRow(
                    id=a.id,
                    at=a.at,
                    actor=a.actor,
                    actor_email=(emails.get(int(uid)) or "") if uid.isdigit() else "",
                    action=a.action,
                    subject=f"{a.subject_type}:{a.subject_id}",
                    amount=int(a.amount) if a.amount is not None else None,
                    reason=a.reason or "",
                    details=a.details if isinstance(a.details, dict) else {},
                )
            )
        return out


def _page_number(value: object) -> int:
    try:
        number = int(str(value)) if value not in (None, "") else 1
    except ValueError:
        raise InvalidInput(N_("The page number must be a whole number."), field="page") from None
    if number < 1 or number > 1_000_000:
        raise InvalidInput(N_("The page number must be a whole number."), field="page")
    return number


def town_audit_service() -> TownAuditService:
    """A TownAuditService for the current app and request."""
    return TownAuditService(get_db().session())
