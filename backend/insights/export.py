"""The anonymised CSV of a town's money and points events in one JST month, for its DATA staff
only (ADR 0028): one row per event of sources.py with its JST day (no time), kind, programme
kind, points, yen, shop id, NFT category and tokens, and a pseudonymous person id.

The pseudonym is HMAC-SHA256 under the KPI_PSEUDONYM purpose key (derived from SECRET_KEY,
backend/core/purpose_keys.py) of "<town id>:<user id>", the first 16 hex digits: the same for
one person within the town in every month (analysts count repeat visitors), different in
another town (the town id is in the message), and not reversible or recomputable without the
server's secret. No e-mail, name, address, wallet address, transaction hash or exact time is
written, and rows are sorted by day, kind and pseudonym so their order says nothing of the
time within a day. Every text cell goes through core.csv_safe. A month of more than EXPORT_MAX
rows is refused (InvalidInput), never cut short. Each export writes a "kpi.export" audit row.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import DATA, has_town_role, require_town_role
from backend.core.csv_safe import csv_cell
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.times import jst_day
from backend.insights import sources
from backend.insights.period import parse_period
from backend.points.models import TownProgramme
from backend.points.programmes import PRESETS
from backend.regions.models import Town

EXPORT = "kpi.export"
EXPORT_MAX = 200_000  # rows in one file; a bigger month is refused rather than cut short
PSEUDONYM_HEX = 16  # 64 bits: no collision to speak of in a town's population
HEADER = (
    "day_jst",
    "kind",
    "programme_kind",
    "points",
    "yen",
    "shop_id",
    "nft_category",
    "nft_tokens",
    "person",
)


def pseudonym(key: bytes, town_id: int, user_id: int) -> str:
    """The person id of `user_id` in the export of `town_id` (module docstring)."""
    digest = hmac.new(key, f"{town_id}:{user_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX]


def _number(value: int | Decimal | None) -> int | str:
    return "" if value is None else int(value)


class KpiExportService:
    def __init__(self, session: Session, key: bytes) -> None:
        self.session = session
        self.key = key  # the KPI_PSEUDONYM purpose key

    def can_export(self, user: User | None, town: Town) -> bool:
        return has_town_role(user, town.id, DATA)

    def export_csv(self, actor: User | None, town: Town, month: object) -> tuple[str, str]:
        """(file name, CSV text) of the events of `month` (YYYY-MM; this JST month when empty).
        DATA staff only (Forbidden otherwise, checked before the month is read); InvalidInput
        for a bad month or one of more than EXPORT_MAX rows. Nothing is written unless the
        file is made."""
        actor = require_town_role(actor, town.id, DATA)
        period = parse_period(month)
        kinds = self._programme_kinds(town)
        rows: list[tuple[str, str, str, int | str, int | str, int | str, str, int | str, str]] = []
        for source in sources.SOURCES:
            found = self.session.execute(source(town.id, period).limit(EXPORT_MAX + 1)).all()
            for r in found:
                rows.append(
                    (
                        jst_day(r.at).isoformat(),
                        str(r.kind),
                        kinds.get(int(r.programme_id), "") if r.programme_id is not None else "",
                        _number(r.points),
                        _number(r.yen),
                        _number(r.shop_id),
                        str(r.category or ""),
                        _number(r.tokens),
                        pseudonym(self.key, town.id, int(r.user_id))
                        if r.user_id is not None
                        else "",
                    )
                )
            if len(rows) > EXPORT_MAX:
                raise InvalidInput(
                    N_("This month has more than %(max)d rows: too many for one file."),
                    max=EXPORT_MAX,
                    field="month",
                )
        rows.sort(key=lambda row: (row[0], row[1], row[8]))
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(HEADER)
        for day, kind, programme, points, yen, shop, category, tokens, person in rows:
            w.writerow(
                [
                    csv_cell(day),
                    csv_cell(kind),
                    csv_cell(programme),
                    points,
                    yen,
                    shop,
                    csv_cell(category),
                    tokens,
                    csv_cell(person),
                ]
            )
        self.session.add(
            AuditLog(
                actor=f"user:{actor.id}",
                action=EXPORT,
                subject_type="town",
                subject_id=str(town.id),
                reason="anonymised KPI events exported as CSV by data staff",
                details={"town_id": town.id, "month": period.month, "rows": len(rows)},
                town_id=town.id,
            )
        )
        self.session.commit()
        return f"kpi-events-{town.slug}-{period.month}.csv", out.getvalue()

    def _programme_kinds(self, town: Town) -> dict[int, str]:
        """programme id -> kind: the town's rows, else the preset of that id."""
        kinds = {p.programme_id: p.name for p in PRESETS}
        query = select(TownProgramme).where(TownProgramme.town_id == town.id)
        for row in self.session.scalars(query):
            kinds[int(row.programme_id)] = row.kind
        return kinds
