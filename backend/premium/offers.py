"""A town's offer of points for yen, as its staff set it in the console, and what a buyer sees.

Rules checked before anything is written (InvalidInput, 400, nothing written):
- the programme is one of the town's programmes of a paid kind, with an expiry of 1 to
  MAX_PAID_DAYS days (資金決済法: a prepaid instrument valid at most six months from issue is
  exempt; docs/adr/0018-premium-points.md);
- the premium is 0..MAX_PERCENT %, and a unit of yen gives a whole number of points
  (unit_yen * premium_percent is a multiple of 100), so every purchase is exact;
- the per-purchase maximum is a whole number of units; limits are whole yen.
Only the town's staff may read or change the offer (Forbidden, 403). Every saved change is an
AuditLog row "premium.offer_update" with the values saved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import require_town_role
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import ascii_int
from backend.points.models import TownProgramme
from backend.points.programmes import MAX_PAID_DAYS, kind
from backend.points.town_settings import EDITORS, TownSettingsService
from backend.premium.limits import jst_month, used
from backend.premium.models import ISSUED, PROCESSING, PremiumOffer, PremiumPurchase
from backend.regions.models import Town

MAX_PERCENT = 100
MAX_YEN = 10_000_000  # one purchase, or one person's month
MAX_TOWN_YEN = 10_000_000_000  # the town's month

# What a new offer starts with in the console (off until staff switch it on).
DEFAULTS = {
    "premium_percent": 20,
    "unit_yen": 1_000,
    "max_yen_per_purchase": 50_000,
    "person_month_yen": 50_000,
    "town_month_yen": None,
}


def paid_programme(row: TownProgramme | None) -> bool:
    """Whether a town programme may carry bought points: a paid kind within the 6-month rule."""
    if row is None:
        return False
    preset = kind(row.kind)
    return bool(preset and preset.paid and 1 <= row.expiry_days <= MAX_PAID_DAYS)


@dataclass(frozen=True)
class MonthSales:
    yen: int
    count: int


@dataclass(frozen=True)
class Quote:
    """What a buyer sees of a town's offer."""

    offer: PremiumOffer
    programme: TownProgramme
    used_yen: int  # the person's purchases this JST month (reserved or paid)

    @property
    def left_yen(self) -> int:
        return max(self.offer.person_month_yen - self.used_yen, 0)

    @property
    def amounts(self) -> list[tuple[int, int]]:
        """The (yen, points) choices a buyer may pick now: whole units up to the per-purchase
        maximum and what is left of the person's month (at most 10 choices: 1, 2, 3, 5, 10,
        20, 30, 50 ... units)."""
        o = self.offer
        top = min(o.max_yen_per_purchase, self.left_yen)
        out: list[tuple[int, int]] = []
        for n in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000):
            yen = n * o.unit_yen
            if yen <= top:
                out.append((yen, o.points_for(yen)))
        return out[-10:]


def _whole(value: object, field: str, lo: int, hi: int, *, optional: bool = False) -> int | None:
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    n = ascii_int(value)
    if n is None or not lo <= n <= hi:
        raise InvalidInput(
            N_("Enter a whole number from %(min)d to %(max)d."), field=field, min=lo, max=hi
        )
    return n


class OfferService:
    """The offer of one town over one DB session."""

    def __init__(self, session: Session, *, now: Callable[[], dt.datetime] = utcnow) -> None:
        self.session = session
        self._now = now

    def offer(self, town: Town) -> PremiumOffer | None:
        return self.session.scalar(select(PremiumOffer).where(PremiumOffer.town_id == town.id))

    def paid_programmes(self, town: Town) -> list[TownProgramme]:
        """The town's programmes that may carry bought points (seeded from the presets)."""
        TownSettingsService(self.session).ensure_seeded(town)
        rows = self.session.scalars(
            select(TownProgramme)
            .where(TownProgramme.town_id == town.id)
            .order_by(TownProgramme.programme_id)
        )
        return [r for r in rows if paid_programme(r)]

    def offer_by_town_id(self, town_id: int) -> PremiumOffer | None:
        return self.session.scalar(select(PremiumOffer).where(PremiumOffer.town_id == town_id))

    def programme_row(self, town_id: int, programme_id: int) -> TownProgramme | None:
        return self.session.scalar(
            select(TownProgramme).where(
                TownProgramme.town_id == town_id, TownProgramme.programme_id == programme_id
            )
        )

    def programme_of(self, offer: PremiumOffer) -> TownProgramme | None:
        return self.programme_row(offer.town_id, int(offer.programme_id))

    # ------------------------------------------------------------------ staff

    def for_staff(self, actor: User | None, town: Town) -> PremiumOffer | None:
        require_town_role(actor, town.id, *EDITORS)
        return self.offer(town)

    def save(self, actor: User | None, town: Town, form: Mapping[str, Any]) -> PremiumOffer:
        """Create or change the town's offer (staff only); audited. Raises InvalidInput."""
        user = require_town_role(actor, town.id, *EDITORS)
        values = self._values(town, form)
        offer = self.offer(town)
        created = offer is None
        if offer is None:
            offer = PremiumOffer(town_id=town.id, **values)
            self.session.add(offer)
        else:
            for name, value in values.items():
                setattr(offer, name, value)
        offer.updated_by = user.id
        offer.updated_at = self._now()
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action="premium.offer_update",
                subject_type="town",
                subject_id=str(town.id),
                reason="points sale set by town staff",
                details={"town_id": town.id, "created": created, **values},
                town_id=town.id,
            )
        )
        try:
            self.session.commit()
        except IntegrityError:  # two first saves at once: the other one made the row
            self.session.rollback()
            return self.save(actor, town, form)
        return offer

    def _values(self, town: Town, form: Mapping[str, Any]) -> dict[str, Any]:
        pid = ascii_int(form.get("programme_id"))
        programmes = {r.programme_id: r for r in self.paid_programmes(town)}
        if pid is None or pid not in programmes:
            raise InvalidInput(
                N_(
                    "Choose a programme for points bought for money (its points must expire "
                    "within %(days)d days)."
                ),
                field="programme_id",
                days=MAX_PAID_DAYS,
            )
        percent = _whole(form.get("premium_percent"), "premium_percent", 0, MAX_PERCENT)
        unit = _whole(form.get("unit_yen"), "unit_yen", 1, MAX_YEN)
        assert percent is not None and unit is not None  # noqa: S101 - not optional
        if unit * percent % 100:
            raise InvalidInput(
                N_(
                    "With this premium, one unit of yen would give a fraction of a point: "
                    "choose a unit that is a multiple of 100 yen."
                ),
                field="unit_yen",
            )
        most = _whole(form.get("max_yen_per_purchase"), "max_yen_per_purchase", unit, MAX_YEN)
        assert most is not None  # noqa: S101
        if most % unit:
            raise InvalidInput(
                N_("The most one purchase may be must be a whole number of units (%(unit)s yen)."),
                field="max_yen_per_purchase",
                unit=f"{unit:,}",
            )
        return {
            "programme_id": pid,
            "premium_percent": percent,
            "unit_yen": unit,
            "max_yen_per_purchase": most,
            "person_month_yen": _whole(
                form.get("person_month_yen"), "person_month_yen", unit, MAX_YEN
            ),
            "town_month_yen": _whole(
                form.get("town_month_yen"), "town_month_yen", unit, MAX_TOWN_YEN, optional=True
            ),
            "active": str(form.get("active", "")).strip().lower() in ("1", "true", "on", "yes"),
        }

    def month_sales(self, town: Town) -> MonthSales:
        """Paid purchases (issued or being issued) of the current JST month."""
        yen, count = self.session.execute(
            select(func.coalesce(func.sum(PremiumPurchase.yen), 0), func.count()).where(
                PremiumPurchase.town_id == town.id,
                PremiumPurchase.status.in_((PROCESSING, ISSUED)),
                PremiumPurchase.reserved_month == jst_month(self._now()),
            )
        ).one()
        return MonthSales(int(yen), int(count))

    # ------------------------------------------------------------------ buyers

    def quote(self, town: Town, user: User | None) -> Quote | None:
        """The town's offer as a buyer sees it; None when the town sells no points now (no
        offer, switched off, no points contract, or its programme closed or not paid)."""
        offer = self.offer(town)
        if offer is None or not offer.active or not town.points_address:
            return None
        programme = self.programme_of(offer)
        if programme is None or not programme.active or not paid_programme(programme):
            return None
        spent = used(self.session, town.id, jst_month(self._now()), user.id) if user else 0
        return Quote(offer, programme, spent)


def offer_service() -> OfferService:
    """An OfferService for the current app and request."""
    return OfferService(get_db().session())
