"""Partner towns: the partnership both towns' staff agree to, and the monthly clearing.

Partnership (one row per unordered pair of towns, UNIQUE):

  proposed   a staff member of one town proposed (that town's approval, with who and when)
  approved   a staff member of the other town approved: setPartner(other, true) is queued on
             each town's points through the outbox (the "town_settings" role key)
  active     both PartnerSet events are indexed: each town's shops accept the other's points
  ended      either town's staff ended it: no more partner payments on the platform at once,
             setPartner(other, false) queued on that town's points (starting it again is not
             built yet)

The same town cannot approve twice; each step is one conditional UPDATE (compare-and-set), so
concurrent clicks have one winner and write one audit row.

Clearing: every PartnerPaymentAccepted event (indexed by handlers.py into `partner_payments`)
says the payer's town owes the shop's town that many points. A month's statement of a pair of
towns sums both directions; each direction is valued at the yen rate of the town whose points
paid (the town that issued them owes their value), and the net is what the debtor town pays.
A month can be settled once it is over by the chain's clock (JST): two different members of
the debtor town's staff approve the statement as it stands (four eyes; the figures are kept),
then one marks it paid with the bank transfer's reference. If the chain changed the month
(a reorg) after an approval, the approvals are dropped and the new figures must be approved.
Staff of both towns see the statement; only the debtor town's staff approve and settle.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, has_town_role, require_town_role
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.csv_safe import csv_cell
from backend.core.db import get_db, utcnow
from backend.core.errors import N_, Forbidden, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.partners.errors import (
    AlreadyApproved,
    ClearingNotReady,
    NotPartners,
    PartnershipNotFound,
    PartnershipNotReady,
    SecondApproverNeeded,
    StatementChanged,
)
from backend.partners.models import (
    ACTIVE,
    APPROVED,
    APPROVING,
    CLEARING_APPROVED,
    ENDED,
    PROPOSED,
    SETTLED,
    ClearingSettlement,
    PartnerPayment,
    Partnership,
    TownPointRate,
)
from backend.regions.models import Town

log = logging.getLogger(__name__)

JST = dt.timezone(dt.timedelta(hours=9), "JST")
SETTINGS_ROLE_KEY = "town_settings"  # the role key that holds SETTINGS_ROLE on RegionPoints
MAX_RATE = 1_000_000
_CHANGED = N_(
    "The chain changed this month's payments since they were approved: the approvals were"
    " dropped. Check the new figures and approve again."
)
_MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def month_of(moment: dt.datetime) -> str:
    """The JST month (YYYY-MM) of `moment`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(JST).strftime("%Y-%m")


def month_end(month: str) -> dt.datetime:
    """The first instant after JST month `month`."""
    year, mon = (int(x) for x in month.split("-"))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return dt.datetime(year, mon, 1, tzinfo=JST)


def parse_month(value: object, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _MONTH_RE.fullmatch(value):
        raise InvalidInput(N_("A month must look like 2026-04."), field="month")
    return value


@dataclass
class Side:
    """One town of a partnership, as a page shows it."""

    town: Town
    approved_by: int | None
    approved_at: dt.datetime | None
    chain_state: str | None  # the setPartner call: queued, sent, confirmed, ... or None


@dataclass
class PartnershipView:
    partnership: Partnership
    me: Side
    other: Side

    @property
    def status(self) -> str:
        return self.partnership.status


@dataclass
class Statement:
    """A month's clearing of a pair of towns (A is the lower town id)."""

    town_a: Town
    town_b: Town
    month: str
    points_a_to_b: int  # A's points paid at B's shops: A owes B
    points_b_to_a: int
    rate_a: int
    rate_b: int
    closed: bool  # the month is over by the chain's clock
    payments: list[PartnerPayment] = field(default_factory=list)
    settlement: ClearingSettlement | None = None

    @property
    def yen_a_owes(self) -> int:
        return self.points_a_to_b * self.rate_a

    @property
    def yen_b_owes(self) -> int:
        return self.points_b_to_a * self.rate_b

    @property
    def net_yen(self) -> int:
        return abs(self.yen_a_owes - self.yen_b_owes)

    @property
    def debtor(self) -> Town | None:
        if self.yen_a_owes == self.yen_b_owes:
            return None
        return self.town_a if self.yen_a_owes > self.yen_b_owes else self.town_b

    @property
    def creditor(self) -> Town | None:
        d = self.debtor
        if d is None:
            return None
        return self.town_b if d.id == self.town_a.id else self.town_a

    @property
    def stale(self) -> bool:
        """The chain changed the month after its figures were approved (or paid)."""
        return self.settlement is not None and not _same_figures(self.settlement, self.figures())

    def figures(self) -> dict[str, Any]:
        d, c = self.debtor, self.creditor
        return {
            "points_a_to_b": self.points_a_to_b,
            "points_b_to_a": self.points_b_to_a,
            "rate_a": self.rate_a,
            "rate_b": self.rate_b,
            "debtor_town_id": d.id if d else None,
            "creditor_town_id": c.id if c else None,
            "yen": self.net_yen,
        }


def _same_figures(s: ClearingSettlement, figures: dict[str, Any]) -> bool:
    return (
        int(s.points_a_to_b) == figures["points_a_to_b"]
        and int(s.points_b_to_a) == figures["points_b_to_a"]
        and s.rate_a == figures["rate_a"]
        and s.rate_b == figures["rate_b"]
        and s.yen == figures["yen"]
        and s.debtor_town_id == figures["debtor_town_id"]
    )


class PartnerService:
    """Partnerships and clearing over one DB session. `outbox` is built on first use;
    `chain_now` answers the latest block's time (Unix seconds)."""

    def __init__(
        self,
        session: Session,
        *,
        outbox: Callable[[], OutboxService],
        chain_now: Callable[[], int],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._outbox = outbox
        self._chain_now = chain_now
        self._now = now

    # ------------------------------------------------------------------ look-ups

    def town(self, town_id: int) -> Town:
        town = self.session.get(Town, town_id)
        assert town is not None  # noqa: S101 - a foreign key
        return town

    def town_by_slug(self, slug: object) -> Town:
        town = (
            self.session.scalar(select(Town).where(Town.slug == slug))
            if isinstance(slug, str)
            else None
        )
        if town is None:
            raise InvalidInput(N_("There is no such town."), field="town")
        return town

    def _pair(self, t1: int, t2: int) -> Partnership | None:
        a, b = sorted((t1, t2))
        return self.session.scalar(
            select(Partnership).where(Partnership.town_a_id == a, Partnership.town_b_id == b)
        )

    def partnership(self, partnership_id: object) -> Partnership:
        p = self.session.get(Partnership, i) if (i := db_id_or_none(partnership_id)) else None
        if p is None:
            raise PartnershipNotFound(N_("There is no such partnership."))
        return p

    def is_active(self, t1: Town, t2: Town) -> bool:
        p = self._pair(t1.id, t2.id) if t1.id != t2.id else None
        return p is not None and p.status == ACTIVE

    def require_active(self, payer_town: Town, merchant_town: Town) -> None:
        """NotPartners unless the two towns' partnership is active (both setPartner confirmed)."""
        if not self.is_active(payer_town, merchant_town):
            raise NotPartners(
                N_("%(payer)s points cannot be used at this shop: the towns are not partners."),
                payer=payer_town.name_en,
            )

    def active_partners(self, town: Town) -> list[Town]:
        """The towns whose points `town`'s shops accept (active partnerships), by id."""
        rows = self.session.scalars(
            select(Partnership).where(
                Partnership.status == ACTIVE,
                or_(Partnership.town_a_id == town.id, Partnership.town_b_id == town.id),
            )
        )
        return sorted((self.town(p.other(town.id)) for p in rows), key=lambda t: t.id)

    def candidates(self, user: User | None, town: Town) -> list[Town]:
        """Towns with points that `town` has no partnership with yet (for the proposal form)."""
        require_town_role(user, town.id, STAFF)
        taken = {p.other(town.id) for p in self._partnerships_of(town)}
        towns = self.session.scalars(
            select(Town).where(Town.points_address.is_not(None), Town.id != town.id)
        )
        return [t for t in towns if t.id not in taken]

    def _partnerships_of(self, town: Town) -> list[Partnership]:
        return list(
            self.session.scalars(
                select(Partnership)
                .where(or_(Partnership.town_a_id == town.id, Partnership.town_b_id == town.id))
                .order_by(Partnership.id)
            )
        )

    def partnerships(self, user: User | None, town: Town) -> list[PartnershipView]:
        """The town's partnerships with each side's approval and setPartner state. STAFF."""
        require_town_role(user, town.id, STAFF)
        out = []
        for p in self._partnerships_of(town):
            sides = {}
            for s in ("a", "b"):
                tx_id = getattr(p, f"{s}_outbox_tx_id")
                state = chain.outbox_state(self.session, tx_id) if tx_id else None
                if getattr(p, f"{s}_confirmed_at") is not None:
                    state = "confirmed"
                sides[s] = Side(
                    self.town(getattr(p, f"town_{s}_id")),
                    getattr(p, f"{s}_approved_by"),
                    getattr(p, f"{s}_approved_at"),
                    state,
                )
            mine = p.side(town.id)
            out.append(PartnershipView(p, sides[mine], sides["b" if mine == "a" else "a"]))
        return out

    # ------------------------------------------------------------------ agreeing

    def propose(self, user: User | None, town: Town, other_slug: object) -> Partnership:
        """`town`'s staff propose a partnership with the town `other_slug` (this town's approval).
        When the other town already proposed, this is the approval. Proposing again changes
        nothing. AuditLog "partnership.propose"."""
        user = require_town_role(user, town.id, STAFF)
        other = self.town_by_slug(other_slug)
        if other.id == town.id:
            raise InvalidInput(N_("A town cannot partner with itself."), field="town")
        if not town.points_address or not other.points_address:
            raise PartnershipNotReady(N_("Both towns need their points first."))
        existing = self._pair(town.id, other.id)
        if existing is not None:
            if (
                existing.status == PROPOSED
                and getattr(existing, f"{existing.side(town.id)}_approved_by") is None
            ):
                return self.approve(user, town, existing.id)
            if existing.status == ENDED:
                raise PartnershipNotReady(
                    N_("This partnership was ended; starting it again is not possible yet.")
                )
            return existing
        a, b = sorted((town.id, other.id))
        side = "a" if town.id == a else "b"
        now = self._now()
        p = Partnership(town_a_id=a, town_b_id=b, status=PROPOSED)
        setattr(p, f"{side}_approved_by", user.id)
        setattr(p, f"{side}_approved_at", now)
        self.session.add(p)
        try:
            self.session.flush()
            self._audit(user, "partnership.propose", p, town, {"other_town_id": other.id})
            self.session.commit()
        except IntegrityError:  # the other town proposed at the same moment
            self.session.rollback()
            found = self._pair(town.id, other.id)
            if found is None:
                raise
            if (
                found.status == PROPOSED
                and getattr(found, f"{found.side(town.id)}_approved_by") is None
            ):
                return self.approve(user, town, found.id)
            return found
        return p

    def approve(self, user: User | None, town: Town, partnership_id: object) -> Partnership:
        """`town`'s staff approve the other town's proposal: with both towns' approval the
        partnership is "approved" and setPartner(other, true) is queued on both towns' points,
        in the same transaction. The same town cannot approve twice (AlreadyApproved)."""
        user = require_town_role(user, town.id, STAFF)
        p = self.partnership(partnership_id)
        if town.id not in (p.town_a_id, p.town_b_id):
            raise PartnershipNotFound(N_("There is no such partnership."))
        side = p.side(town.id)
        other = "b" if side == "a" else "a"
        if getattr(p, f"{side}_approved_by") is not None:
            raise AlreadyApproved(
                N_("Your town has already approved this partnership; the other town must approve.")
            )
        if p.status != PROPOSED:
            raise PartnershipNotReady(N_("This partnership cannot be approved in its state."))
        now = self._now()
        mine_by = getattr(Partnership, f"{side}_approved_by")
        theirs_by = getattr(Partnership, f"{other}_approved_by")
        done = self.session.execute(
            update(Partnership)
            .where(
                Partnership.id == p.id,
                Partnership.status == PROPOSED,
                mine_by.is_(None),
                theirs_by.is_not(None),
            )
            .values(
                {f"{side}_approved_by": user.id, f"{side}_approved_at": now, "status": APPROVED}
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            raise AlreadyApproved(N_("Someone else changed this partnership. Reload the page."))
        try:
            self.session.refresh(p)
            self._audit(user, "partnership.approve", p, town, {"side": side})
            town_a, town_b = self.town(p.town_a_id), self.town(p.town_b_id)
            for s, me, them in (("a", town_a, town_b), ("b", town_b, town_a)):
                tx = self._outbox().enqueue(
                    self.session,
                    ContractCall(
                        str(me.points_address),
                        "setPartner",
                        (str(them.points_address), True),
                        artifact_name="RegionPoints",
                    ),
                    sender=Sender.role(SETTINGS_ROLE_KEY, town_id=me.id, user_id=user.id),
                    key=f"partners.set:{p.id}:{s}:on",
                    subject=Subject("partnership", p.id),
                    audit=AuditEntry(
                        actor=f"user:{user.id}",
                        action="partnership.set_partner",
                        subject_type="partnership",
                        subject_id=str(p.id),
                        reason="partnership approved by both towns",
                        details={"town_id": me.id, "partner_town_id": them.id},
                    ),
                )
                setattr(p, f"{s}_outbox_tx_id", tx.id)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return p

    def end(self, user: User | None, town: Town, partnership_id: object) -> Partnership:
        """Either town's staff end an approved or active partnership: it is "ended" at once (the
        platform takes no more partner payments between the towns) and setPartner(other, false)
        is queued on this town's points, which ends it on chain for both towns once confirmed.
        AuditLog "partnership.end". Ending it again changes nothing."""
        user = require_town_role(user, town.id, STAFF)
        p = self.partnership(partnership_id)
        if town.id not in (p.town_a_id, p.town_b_id):
            raise PartnershipNotFound(N_("There is no such partnership."))
        if p.status == ENDED:
            return p
        if p.status not in (APPROVED, ACTIVE):
            raise PartnershipNotReady(N_("This partnership cannot be ended in its state."))
        side = p.side(town.id)
        done = self.session.execute(
            update(Partnership)
            .where(Partnership.id == p.id, Partnership.status.in_((APPROVED, ACTIVE)))
            .values(status=ENDED, ended_by=user.id, ended_at=self._now())
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            raise PartnershipNotReady(N_("Someone else changed this partnership. Reload the page."))
        try:
            self.session.refresh(p)
            self._audit(user, "partnership.end", p, town, {"side": side})
            other = self.town(p.other(town.id))
            self._outbox().enqueue(
                self.session,
                ContractCall(
                    str(town.points_address),
                    "setPartner",
                    (str(other.points_address), False),
                    artifact_name="RegionPoints",
                ),
                sender=Sender.role(SETTINGS_ROLE_KEY, town_id=town.id, user_id=user.id),
                key=f"partners.set:{p.id}:{side}:off",
                subject=Subject("partnership", p.id),
                audit=AuditEntry(
                    actor=f"user:{user.id}",
                    action="partnership.set_partner",
                    subject_type="partnership",
                    subject_id=str(p.id),
                    reason="partnership ended",
                    details={"town_id": town.id, "partner_town_id": other.id, "accepted": False},
                ),
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return p

    def _audit(
        self, user: User, action: str, p: Partnership, town: Town, details: dict[str, Any]
    ) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action=action,
                subject_type="partnership",
                subject_id=str(p.id),
                reason=f"by staff of town {town.id}",
                details={"town_id": town.id, **details},
            )
        )

    # ------------------------------------------------------------------ rates

    def rate(self, town_id: int) -> int:
        row = self.session.get(TownPointRate, town_id)
        return row.yen_per_point if row is not None else 1

    def set_rate(self, user: User | None, town: Town, value: object) -> TownPointRate:
        """`town`'s staff set the yen value of one of its points (a whole number of yen,
        1..MAX_RATE). AuditLog "clearing.rate"."""
        user = require_town_role(user, town.id, STAFF)
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text.isascii() and text.isdigit():
            text = int(text)
        if isinstance(text, bool) or not isinstance(text, int) or not 1 <= text <= MAX_RATE:
            raise InvalidInput(
                N_("Enter a whole number of yen from 1 to %(max)d."), field="rate", max=MAX_RATE
            )
        row = self.session.get(TownPointRate, town.id)
        before = row.yen_per_point if row is not None else 1
        if row is None:
            row = TownPointRate(town_id=town.id, yen_per_point=text, updated_by=user.id)
            self.session.add(row)
        else:
            row.yen_per_point, row.updated_by, row.updated_at = text, user.id, self._now()
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action="clearing.rate",
                subject_type="town",
                subject_id=str(town.id),
                reason="yen per point for clearing",
                details={"before": before, "after": text},
            )
        )
        self.session.commit()
        return row

    # ------------------------------------------------------------------ clearing

    def _require_party(
        self, user: User | None, town: Town, partner: Town
    ) -> tuple[User, Partnership]:
        user = require_town_role(user, town.id, STAFF)
        p = self._pair(town.id, partner.id) if town.id != partner.id else None
        if p is None:
            raise PartnershipNotFound(N_("There is no such partnership."))
        return user, p

    def current_month(self) -> str:
        return month_of(dt.datetime.fromtimestamp(self._chain_now(), dt.UTC))

    def _statement(self, p: Partnership, month: str) -> Statement:
        rows = list(
            self.session.scalars(
                select(PartnerPayment)
                .where(
                    PartnerPayment.month == month,
                    or_(
                        (PartnerPayment.payer_town_id == p.town_a_id)
                        & (PartnerPayment.merchant_town_id == p.town_b_id),
                        (PartnerPayment.payer_town_id == p.town_b_id)
                        & (PartnerPayment.merchant_town_id == p.town_a_id),
                    ),
                )
                .order_by(PartnerPayment.block_number, PartnerPayment.log_index)
            )
        )
        a_to_b = sum(int(r.amount) for r in rows if r.payer_town_id == p.town_a_id)
        b_to_a = sum(int(r.amount) for r in rows if r.payer_town_id == p.town_b_id)
        settlement = self.session.scalar(
            select(ClearingSettlement).where(
                ClearingSettlement.town_a_id == p.town_a_id,
                ClearingSettlement.town_b_id == p.town_b_id,
                ClearingSettlement.month == month,
            )
        )
        closed = self._chain_now() >= int(month_end(month).timestamp())
        return Statement(
            self.town(p.town_a_id),
            self.town(p.town_b_id),
            month,
            a_to_b,
            b_to_a,
            self.rate(p.town_a_id),
            self.rate(p.town_b_id),
            closed,
            rows,
            settlement,
        )

    def statement(self, user: User | None, town: Town, partner: Town, month: object) -> Statement:
        """The month's clearing statement of `town` and `partner` (staff of either town)."""
        _user, p = self._require_party(user, town, partner)
        return self._statement(p, parse_month(month, self.current_month()))

    def statements(self, user: User | None, town: Town, month: object) -> list[Statement]:
        """The month's statement with every town `town` has agreed a partnership with."""
        require_town_role(user, town.id, STAFF)
        m = parse_month(month, self.current_month())
        return [self._statement(p, m) for p in self._partnerships_of(town) if p.status != PROPOSED]

    def _require_debtor(self, user: User, st: Statement) -> Town:
        if not st.closed:
            raise ClearingNotReady(
                N_("This month is not over yet; it can be settled after it ends.")
            )
        debtor = st.debtor
        if debtor is None:
            raise ClearingNotReady(N_("Nothing is owed this month."))
        if not has_town_role(user, debtor.id, STAFF):
            raise Forbidden(N_("Only the staff of the town that owes may approve and pay."))
        return debtor

    def approve_clearing(
        self, user: User | None, town: Town, partner: Town, month: object
    ) -> ClearingSettlement:
        """Staff of the town that owes approve the month's statement as it stands. The first
        approval records the figures; a second, different member of staff makes it "approved"
        (SecondApproverNeeded for the same person). If the chain changed the month's figures
        since they were approved (a reorg), the approvals are dropped (StatementChanged) and the
        new figures must be approved afresh. AuditLog "clearing.approve"."""
        user, p = self._require_party(user, town, partner)
        st = self._statement(p, parse_month(month, self.current_month()))
        self._drop_stale(user, st)
        debtor = self._require_debtor(user, st)
        figures = st.figures()
        now = self._now()
        s = st.settlement
        if s is None:
            s = ClearingSettlement(
                town_a_id=p.town_a_id,
                town_b_id=p.town_b_id,
                month=st.month,
                status=APPROVING,
                approved_by=user.id,
                approved_at=now,
                **figures,
            )
            self.session.add(s)
            try:
                self.session.flush()
                self._clearing_audit(user, "clearing.approve", s, {"step": "first_approval"})
                self.session.commit()
            except IntegrityError:
                self.session.rollback()
                raise ClearingNotReady(
                    N_("Someone else approved at the same time. Reload the page.")
                ) from None
            return s
        if s.status in (CLEARING_APPROVED, SETTLED):
            if user.id in (s.approved_by, s.second_approved_by):
                return s
            raise ClearingNotReady(N_("This month is already approved."))
        if s.approved_by == user.id:
            raise SecondApproverNeeded(N_("A second, different member of staff must approve."))
        done = self.session.execute(
            update(ClearingSettlement)
            .where(
                ClearingSettlement.id == s.id,
                ClearingSettlement.status == APPROVING,
                ClearingSettlement.approved_by == s.approved_by,
                ClearingSettlement.approved_by != user.id,
                ClearingSettlement.yen == figures["yen"],
            )
            .values(status=CLEARING_APPROVED, second_approved_by=user.id, second_approved_at=now)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            raise ClearingNotReady(N_("Someone else changed this settlement. Reload the page."))
        self._clearing_audit(
            user, "clearing.approve", s, {"step": "second_approval", "debtor": debtor.id}
        )
        self.session.commit()
        self.session.refresh(s)
        return s

    def _drop_stale(self, user: User, st: Statement) -> None:
        """The chain changed a month whose figures were approved but not paid: drop the
        approvals (the row; AuditLog "clearing.restate" keeps what they were) and raise
        StatementChanged. A paid month is never dropped (the page says it changed)."""
        s = st.settlement
        if s is None or s.status == SETTLED or _same_figures(s, st.figures()):
            return
        old = {
            "points_a_to_b": int(s.points_a_to_b),
            "points_b_to_a": int(s.points_b_to_a),
            "yen": s.yen,
            "approved_by": s.approved_by,
            "second_approved_by": s.second_approved_by,
        }
        self._clearing_audit(user, "clearing.restate", s, {"before": old, "after": st.figures()})
        done = self.session.execute(
            delete(ClearingSettlement)
            .where(ClearingSettlement.id == s.id, ClearingSettlement.status != SETTLED)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            self.session.commit()
        else:
            self.session.rollback()
        raise StatementChanged(_CHANGED)

    def settle_clearing(
        self, user: User | None, town: Town, partner: Town, month: object, bank_reference: object
    ) -> ClearingSettlement:
        """Staff of the town that owes mark the approved month paid with the bank transfer's
        reference (compare-and-set: one winner; the same reference again changes nothing).
        Refused when the chain changed the figures since they were approved. AuditLog
        "clearing.pay"."""
        user, p = self._require_party(user, town, partner)
        ref = bank_reference.strip() if isinstance(bank_reference, str) else ""
        if not ref or len(ref) > 120:
            raise InvalidInput(
                N_("%(field)s must be text of 1 to %(max)d characters."),
                field="bank_reference",
                max=120,
            )
        st = self._statement(p, parse_month(month, self.current_month()))
        s = st.settlement
        if s is not None and s.status == SETTLED:
            if s.bank_reference == ref:
                return s
            raise ClearingNotReady(N_("This month was already paid."))
        self._drop_stale(user, st)
        self._require_debtor(user, st)
        if s is None or s.status != CLEARING_APPROVED:
            raise ClearingNotReady(
                N_("Two members of staff must approve this month before it is paid.")
            )
        done = self.session.execute(
            update(ClearingSettlement)
            .where(ClearingSettlement.id == s.id, ClearingSettlement.status == CLEARING_APPROVED)
            .values(status=SETTLED, bank_reference=ref, settled_by=user.id, settled_at=self._now())
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            self.session.refresh(s)
            if s.status == SETTLED and s.bank_reference == ref:
                return s
            raise ClearingNotReady(N_("Someone else changed this settlement. Reload the page."))
        self._clearing_audit(user, "clearing.pay", s, {"bank_reference": ref})
        self.session.commit()
        self.session.refresh(s)
        return s

    def _clearing_audit(
        self, user: User, action: str, s: ClearingSettlement, details: dict[str, Any]
    ) -> None:
        self.session.add(
            AuditLog(
                actor=f"user:{user.id}",
                action=action,
                subject_type="clearing_settlement",
                subject_id=str(s.id),
                amount=s.yen,
                reason=f"clearing of {s.month} between towns {s.town_a_id} and {s.town_b_id}",
                details={
                    "month": s.month,
                    "debtor_town_id": s.debtor_town_id,
                    "creditor_town_id": s.creditor_town_id,
                    **details,
                },
            )
        )

    def statement_csv(
        self, user: User | None, town: Town, partner: Town, month: object
    ) -> tuple[str, str]:
        """(file name, CSV text) of the month's statement: every partner payment, the totals
        in points and yen, who owes whom, and the settlement. Staff of either town."""
        st = self.statement(user, town, partner, month)
        by_id = {st.town_a.id: st.town_a, st.town_b.id: st.town_b}
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["date_jst", "points_of", "shop_town", "shop_address", "points", "tx_hash"])
        for r in st.payments:
            w.writerow(
                [
                    r.block_time.replace(tzinfo=dt.UTC).astimezone(JST).strftime("%Y-%m-%d %H:%M")
                    if r.block_time.tzinfo is None
                    else r.block_time.astimezone(JST).strftime("%Y-%m-%d %H:%M"),
                    by_id[r.payer_town_id].slug,
                    by_id[r.merchant_town_id].slug,
                    r.merchant,
                    int(r.amount),
                    r.tx_hash,
                ]
            )
        w.writerow([])
        w.writerow(["owes", "to", "points", "yen_per_point", "yen"])
        w.writerow([st.town_a.slug, st.town_b.slug, st.points_a_to_b, st.rate_a, st.yen_a_owes])
        w.writerow([st.town_b.slug, st.town_a.slug, st.points_b_to_a, st.rate_b, st.yen_b_owes])
        d, c = st.debtor, st.creditor
        w.writerow(["net", d.slug if d else "", c.slug if c else "", "", st.net_yen])
        s = st.settlement
        w.writerow(
            [
                "settlement",
                s.status if s else "open",
                csv_cell(s.bank_reference or "") if s else "",  # typed by staff
                "",
                s.yen if s else "",
            ]
        )
        a, b = sorted((st.town_a.slug, st.town_b.slug))
        return f"clearing-{a}-{b}-{st.month}.csv", out.getvalue()


def chain_clock() -> int:
    """The latest block's time; the wall clock when the chain does not answer."""
    try:
        return int(current_app.extensions["chain"].block_timestamp("latest"))
    except Exception:  # noqa: BLE001 - the page must still render
        log.warning("chain clock unavailable; using the wall clock for clearing months")
        return int(dt.datetime.now(dt.UTC).timestamp())


def partner_service() -> PartnerService:
    """A PartnerService for the current app and request."""
    return PartnerService(get_db().session(), outbox=chain.outbox_service, chain_now=chain_clock)
