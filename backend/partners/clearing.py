"""The monthly clearing between partner towns: a month's statement of a pair of towns (both
directions, each valued at the yen rate of the town whose points paid, as in force in that
month: rates.py), approved by two of the debtor town's staff (four eyes) and marked paid with
the bank reference; its CSV. The rules are described in services.py.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from backend.accounts.models import User
from backend.accounts.roles import STAFF, has_town_role, require_town_role
from backend.core.csv_safe import csv_cell
from backend.core.errors import N_, Forbidden, InvalidInput
from backend.core.models import AuditLog
from backend.core.times import jst_text
from backend.partners.errors import (
    ClearingNotReady,
    PartnershipNotFound,
    SecondApproverNeeded,
    StatementChanged,
)
from backend.partners.models import (
    APPROVING,
    CLEARING_APPROVED,
    PROPOSED,
    SETTLED,
    ClearingSettlement,
    PartnerPayment,
    Partnership,
)
from backend.partners.months import JST, month_end, month_of, parse_month
from backend.partners.rates import RateService
from backend.regions.models import Town

_CHANGED = N_(
    "The chain changed this month's payments since they were approved: the approvals were"
    " dropped. Check the new figures and approve again."
)
# The calendar's names stay importable from here (months.py holds them).
__all__ = ["JST", "ClearingService", "Statement", "month_end", "month_of", "parse_month"]


@dataclass
class Statement:
    """A month's clearing of a pair of towns (A is the lower town id)."""

    town_a: Town
    town_b: Town
    month: str
    points_a_to_b: int  # A's points paid at B's shops: A owes B
    points_b_to_a: int
    rate_a: int  # A's yen per point in force in `month`
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


class ClearingService(RateService):
    """The monthly clearing statements and their settlement (on top of the partnerships and
    the towns' rates)."""

    def _require_party(
        self, user: User | None, town: Town, partner: Town
    ) -> tuple[User, Partnership]:
        user = require_town_role(user, town.id, STAFF)
        p = self._pair(town.id, partner.id) if town.id != partner.id else None
        if p is None:
            raise PartnershipNotFound(N_("There is no such partnership."))
        return user, p

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
            # The rates in force in the month, never today's: a change is in force from the
            # month after it is made (rates.py), so what a month owes cannot be changed later.
            self.rate_in(p.town_a_id, month),
            self.rate_in(p.town_b_id, month),
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
        # A partnership proposed again after it ended keeps its earlier months' statements.
        return [
            self._statement(p, m)
            for p in self._partnerships_of(town)
            if p.status != PROPOSED or p.term > 1
        ]

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
                    jst_text(r.block_time),
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
