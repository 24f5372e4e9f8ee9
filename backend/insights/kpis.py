"""The KPI report of one town for one JST month, for its staff console: aggregates only (counts,
points, yen, distinct people), never a name, an e-mail or an address. Money and points come
from sources.py (the same rows the anonymised export lists); the other figures from the
domains' tables: ticket uses (`nft_checkins` done), event check-ins, DAO proposals and the
votes the chain counted, residents verified whose pass was issued.

"Relationship population" (関係人口) is approximated as the distinct accounts that did
anything in the town in the month: paid a shop, were granted or issued points, bought points
or a fan NFT, checked in to an event, used a ticket (the ticket holder's account), or voted.

Who may read it: the town's STAFF (and admins) and its DATA staff (who export the rows); a
shop's clerk, venue staff and anyone else get Forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, func, select, union
from sqlalchemy.orm import Session

from backend.accounts.models import Address, User
from backend.accounts.roles import DATA, STAFF, require_town_role
from backend.dao.models import DaoPoll, DaoPollVote, DaoProposal, DaoVote
from backend.events.models import Event, EventCheckIn
from backend.insights import sources
from backend.insights.period import Period
from backend.merchants.models import Charge
from backend.points.models import TownProgramme
from backend.points.programmes import PRESETS
from backend.regions.models import Town
from backend.residency.models import ISSUED, REVOKED, REVOKING, Resident
from backend.shop.categories import BY_KEY
from backend.shop.models import CheckIn

COUNTED = "counted"  # a DAO vote the chain counted (dao_votes.state)
TICKET_USED = "done"  # nft_checkins.status once PerkUsed is indexed
PASS_ISSUED = (ISSUED, REVOKING, REVOKED)  # a pass was issued (revoked later or not)
ROUTES = (sources.GRANTED, sources.ISSUED_STAFF, sources.ISSUED_SERVICE, sources.BOUGHT)


@dataclass(frozen=True)
class IssuedLine:
    """Points issued in one route under one programme of the town."""

    route: str  # sources.GRANTED, ISSUED_STAFF, ISSUED_SERVICE or BOUGHT
    programme_id: int
    kind: str  # the programme's kind (points/programmes.py names), "" when unknown
    name_ja: str  # the town's name for the programme, "" when the town has no row for it
    name_en: str
    label: str  # msgid of the kind's label (the fallback name)
    count: int
    points: int

    def name(self, locale: str | None) -> str:
        return (self.name_ja if (locale or "ja").startswith("ja") else self.name_en) or ""


@dataclass(frozen=True)
class NftLine:
    category: str  # a key of backend/shop/categories.py
    label: str  # its label's msgid ("" for a key the platform no longer lists)
    orders: int
    tokens: int
    yen: int
    points: int


@dataclass(frozen=True)
class Kpis:
    town_id: int
    period: Period
    issued: list[IssuedLine] = field(default_factory=list)
    bought_yen: int = 0  # yen paid for the points bought
    payments: int = 0
    payment_points: int = 0
    partner_payments: int = 0  # of `payments`, paid with a partner town's points
    redemptions: int = 0
    redeemed_points: int = 0
    settlements: int = 0
    settled_yen: int = 0
    nft: list[NftLine] = field(default_factory=list)
    ticket_uses: int = 0
    event_check_ins: int = 0
    proposals: int = 0
    votes: int = 0
    poll_votes: int = 0
    residents_verified: int = 0
    people: int = 0

    @property
    def issued_count(self) -> int:
        return sum(line.count for line in self.issued)

    @property
    def issued_points(self) -> int:
        return sum(line.points for line in self.issued)

    @property
    def nft_orders(self) -> int:
        return sum(line.orders for line in self.nft)

    @property
    def nft_tokens(self) -> int:
        return sum(line.tokens for line in self.nft)

    @property
    def nft_yen(self) -> int:
        return sum(line.yen for line in self.nft)

    @property
    def nft_points(self) -> int:
        return sum(line.points for line in self.nft)


def _int(value: int | Decimal | None) -> int:
    return int(value or 0)


class KpiService:
    """The KPI report; reads only (writes nothing, asks no node)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def report(self, actor: User | None, town: Town, period: Period) -> Kpis:
        """The town's KPIs for `period`. STAFF (or admin) or DATA staff of the town."""
        require_town_role(actor, town.id, STAFF, DATA)
        t, p = town.id, period
        payments = sources.payments(t, p).subquery()
        redeemed = sources.redemptions(t, p).subquery()
        settled = sources.settlements(t, p).subquery()
        pay_count, pay_points = self._count_sum(payments, payments.c.points)
        partner = self._count(
            sources.payments(t, p).where(
                Charge.points_town_id.is_not(None), Charge.points_town_id != t
            )
        )
        red_count, red_points = self._count_sum(redeemed, redeemed.c.points)
        set_count, set_yen = self._count_sum(settled, settled.c.yen)
        bought = sources.bought(t, p).subquery()
        return Kpis(
            town_id=t,
            period=p,
            issued=self._issued(town, p),
            bought_yen=_int(self.session.scalar(select(func.sum(bought.c.yen)))),
            payments=pay_count,
            payment_points=pay_points,
            partner_payments=_int(partner),
            redemptions=red_count,
            redeemed_points=red_points,
            settlements=set_count,
            settled_yen=set_yen,
            nft=self._nft(t, p),
            ticket_uses=self._count(self._ticket_uses(t, p)),
            event_check_ins=self._count(self._check_ins(t, p)),
            proposals=self._count(
                select(DaoProposal.id).where(
                    DaoProposal.town_id == t,
                    DaoProposal.joint_of.is_(None),  # a joint proposal counts once
                    sources.within(DaoProposal.created_at, p),
                )
            ),
            votes=self._count(self._votes(t, p)),
            poll_votes=self._count(self._poll_votes(t, p)),
            residents_verified=self._count(
                select(Resident.id).where(
                    Resident.town_id == t,
                    Resident.state.in_(PASS_ISSUED),
                    sources.within(Resident.verified_at, p),
                )
            ),
            people=self._people(t, p),
        )

    # ------------------------------------------------------------------ the parts

    def _count(self, query: Select) -> int:
        return _int(self.session.scalar(select(func.count()).select_from(query.subquery())))

    def _count_sum(self, sub: Subquery, column: ColumnElement[Any]) -> tuple[int, int]:
        query = select(func.count(), func.sum(column)).select_from(sub)
        count, total = self.session.execute(query).one()
        return _int(count), _int(total)

    def _issued(self, town: Town, p: Period) -> list[IssuedLine]:
        programmes = {
            int(row.programme_id): row
            for row in self.session.scalars(
                select(TownProgramme).where(TownProgramme.town_id == town.id)
            )
        }
        presets = {pr.programme_id: pr for pr in PRESETS}
        lines = []
        for source in (sources.grants, sources.issued, sources.bought):
            sub = source(town.id, p).subquery()
            found = self.session.execute(
                select(
                    sub.c.kind, sub.c.programme_id, func.count(), func.sum(sub.c.points)
                ).group_by(sub.c.kind, sub.c.programme_id)
            ).all()
            for route, programme_id, count, points in found:
                row = programmes.get(int(programme_id))
                preset = presets.get(int(programme_id))
                kind = row.kind if row else (preset.name if preset else "")
                lines.append(
                    IssuedLine(
                        route=str(route),
                        programme_id=int(programme_id),
                        kind=kind,
                        name_ja=row.name_ja if row else "",
                        name_en=row.name_en if row else "",
                        label=preset.label if preset else "",
                        count=_int(count),
                        points=_int(points),
                    )
                )
        return sorted(lines, key=lambda line: (ROUTES.index(line.route), line.programme_id))

    def _nft(self, t: int, p: Period) -> list[NftLine]:
        sub = sources.nft_orders(t, p).subquery()
        found = self.session.execute(
            select(
                sub.c.category,
                func.count(),
                func.sum(sub.c.tokens),
                func.sum(sub.c.yen),
                func.sum(sub.c.points),
            )
            .group_by(sub.c.category)
            .order_by(sub.c.category)
        ).all()
        return [
            NftLine(
                category=str(category),
                label=BY_KEY[category].label if category in BY_KEY else "",
                orders=_int(orders),
                tokens=_int(tokens),
                yen=_int(yen),
                points=_int(points),
            )
            for category, orders, tokens, yen, points in found
        ]

    def _ticket_uses(self, t: int, p: Period) -> Select:
        return select(CheckIn.id, CheckIn.holder_address).where(
            CheckIn.town_id == t,
            CheckIn.status == TICKET_USED,
            sources.within(CheckIn.created_at, p),
        )

    def _check_ins(self, t: int, p: Period) -> Select:
        return (
            select(EventCheckIn.id, EventCheckIn.user_id)
            .join(Event, Event.id == EventCheckIn.event_id)
            .where(Event.town_id == t, sources.within(EventCheckIn.created_at, p))
        )

    def _votes(self, t: int, p: Period) -> Select:
        return (
            select(DaoVote.id, DaoVote.user_id)
            .join(DaoProposal, DaoProposal.id == DaoVote.proposal_row_id)
            .where(
                DaoProposal.town_id == t,
                DaoVote.state == COUNTED,
                sources.within(DaoVote.created_at, p),
            )
        )

    def _poll_votes(self, t: int, p: Period) -> Select:
        return (
            select(DaoPollVote.id, DaoPollVote.user_id)
            .join(DaoPoll, DaoPoll.id == DaoPollVote.poll_row_id)
            .where(
                DaoPoll.town_id == t,
                DaoPollVote.state == COUNTED,
                sources.within(DaoPollVote.created_at, p),
            )
        )

    def _people(self, t: int, p: Period) -> int:
        """Distinct accounts behind any of the month's events in the town (module docstring)."""
        money = [select(q.subquery().c.user_id) for q in (s(t, p) for s in sources.WITH_PERSON)]
        tickets = (
            select(Address.user_id)
            .join(CheckIn, func.lower(CheckIn.holder_address) == func.lower(Address.address))
            .where(
                CheckIn.town_id == t,
                CheckIn.status == TICKET_USED,
                sources.within(CheckIn.created_at, p),
            )
        )
        others = [
            select(q.subquery().c.user_id)
            for q in (self._check_ins(t, p), self._votes(t, p), self._poll_votes(t, p))
        ]
        everyone = union(*money, tickets, *others).subquery()
        return _int(
            self.session.scalar(
                select(func.count(func.distinct(everyone.c[0]))).where(everyone.c[0].is_not(None))
            )
        )
