"""Partnerships between towns (共同利用): one row per unordered pair of towns, proposed by
one town's staff and approved by the other's (setPartner queued on each town's points), ended
by either. The states are described in services.py; each town's yen rate per point is in
rates.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.db import utcnow
from backend.core.errors import N_, InvalidInput
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.partners.errors import (
    AlreadyApproved,
    NotPartners,
    PartnershipNotFound,
    PartnershipNotReady,
)
from backend.partners.models import (
    ACTIVE,
    APPROVED,
    ENDED,
    PROPOSED,
    Partnership,
)
from backend.regions.models import Town

SETTINGS_ROLE_KEY = "town_settings"  # the role key that holds SETTINGS_ROLE on RegionPoints
IN_FLIGHT = ("queued", "sent", "replaced")  # outbox states of a call the chain has not run yet


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


class PartnershipService:
    """Partnerships over one DB session. `outbox` is built on first use;
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
        """Towns with points that `town` has no partnership with, or an ended one (for the
        proposal form: proposing to the town of an ended partnership starts it again)."""
        require_town_role(user, town.id, STAFF)
        taken = {p.other(town.id) for p in self._partnerships_of(town) if p.status != ENDED}
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
                return self._propose_again(user, town, existing)
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

    def _propose_again(self, user: User, town: Town, p: Partnership) -> Partnership:
        """An ended partnership proposed anew: the same row starts its next term, "proposed"
        with this town's approval only (the other town approves again, which queues both
        setPartner(other, true) under the new term's keys). Each side's confirmed_at stays: it
        mirrors the chain, where the ending town's PartnerSet(false) clears its side. One
        compare-and-set from "ended": of two towns proposing again at once, the second
        approves the first's proposal."""
        # The end's setPartner(false) first: sent after it, the new term's calls are indexed
        # after it too, and the row never reads "active" while the chain still says ended.
        if any(
            c.function == "setPartner" and c.state in IN_FLIGHT
            for c in chain.calls_of_subject(self.session, "partnership", p.id)
        ):
            raise PartnershipNotReady(
                N_(
                    "The end of this partnership is still being recorded on chain;"
                    " try again in a few minutes."
                )
            )
        side = p.side(town.id)
        other = "b" if side == "a" else "a"
        now = self._now()
        done = self.session.execute(
            update(Partnership)
            .where(Partnership.id == p.id, Partnership.status == ENDED)
            .values(
                {
                    "status": PROPOSED,
                    "term": Partnership.term + 1,
                    f"{side}_approved_by": user.id,
                    f"{side}_approved_at": now,
                    f"{other}_approved_by": None,
                    f"{other}_approved_at": None,
                    "a_outbox_tx_id": None,
                    "b_outbox_tx_id": None,
                    "ended_by": None,
                    "ended_at": None,
                }
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            self.session.rollback()
            self.session.refresh(p)
            if p.status == PROPOSED and getattr(p, f"{side}_approved_by") is None:
                return self.approve(user, town, p.id)
            return p
        try:
            self.session.refresh(p)
            self._audit(
                user,
                "partnership.propose",
                p,
                town,
                {"other_town_id": p.other(town.id), "term": p.term},
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
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
                tx = self._queue_set_partner(user, p, s, me, them, accepted=True)
                setattr(p, f"{s}_outbox_tx_id", tx.id)
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        return p

    def _queue_set_partner(
        self, user: User, p: Partnership, side: str, me: Town, them: Town, *, accepted: bool
    ) -> Any:
        """Queue setPartner(them, accepted) on `me`'s points, keyed per partnership, side and
        direction (so approving or ending twice queues nothing more), and per term after the
        first (a partnership started again queues its calls anew); its outbox row."""
        details: dict[str, Any] = {"town_id": me.id, "partner_town_id": them.id}
        if not accepted:
            details["accepted"] = False
        return self._outbox().enqueue(
            self.session,
            ContractCall(
                str(me.points_address),
                "setPartner",
                (str(them.points_address), accepted),
                artifact_name="RegionPoints",
            ),
            sender=Sender.role(SETTINGS_ROLE_KEY, town_id=me.id, user_id=user.id),
            key=f"partners.set:{_term_key(p)}:{side}:{'on' if accepted else 'off'}",
            subject=Subject("partnership", p.id),
            audit=AuditEntry(
                actor=f"user:{user.id}",
                action="partnership.set_partner",
                subject_type="partnership",
                subject_id=str(p.id),
                reason="partnership approved by both towns" if accepted else "partnership ended",
                details=details,
            ),
        )

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
            self._queue_set_partner(user, p, side, town, other, accepted=False)
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


def _term_key(p: Partnership) -> str:
    """The partnership's part of its outbox keys: its id in the first term (the keys it had
    before terms existed), "<id>.<term>" after."""
    return str(p.id) if p.term == 1 else f"{p.id}.{p.term}"
