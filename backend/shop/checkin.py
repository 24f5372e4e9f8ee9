"""Ticket check-in: venue staff (VERIFIER) read a ticket QR and mark one use of a perk on chain
(through the outbox, one commit each)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.accounts.models import Address, User
from backend.accounts.roles import VERIFIER, require_town_role
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.db import utcnow
from backend.core.errors import N_, AppError, InvalidInput, ServiceUnavailable
from backend.core.idempotency import first_answer
from backend.regions.models import Town
from backend.shop.catalog import PerkView, ShopService
from backend.shop.errors import TicketRefused
from backend.shop.models import CheckIn, Collection

# What venue staff are told at a glance (issue 15 §7): OK, or NG and why.
OK, USED_UP, PERK_EXPIRED, NO_PERKS, UNAVAILABLE = (
    "ok",
    "used_up",
    "perk_expired",
    "no_perks",
    "unavailable",
)


@dataclass
class TicketView:
    town: Town
    collection: Collection
    token_id: int
    holder: str
    perks: list[PerkView] = field(default_factory=list)
    holder_name: str = ""  # the holder's display name; "" when they set none (never the 0x)
    verdict: str = OK
    usable: set[int] = field(default_factory=set)  # perk ids with a use left, valid now


def verdict(perks: list[PerkView], now: dt.datetime) -> tuple[str, set[int]]:
    """OK when a perk has a use left and has not ended; else why not: unreadable uses
    (UNAVAILABLE, never NG for a ticket that may be fine), no perks, all used up, or ended."""
    usable = {
        p.perk_id for p in perks if p.uses_left and (p.valid_until is None or p.valid_until >= now)
    }
    if usable:
        return OK, usable
    if any(p.uses_left is None for p in perks):
        return UNAVAILABLE, usable
    if not perks:
        return NO_PERKS, usable
    if all(p.uses_left == 0 for p in perks):
        return USED_UP, usable
    return PERK_EXPIRED, usable


class CheckInService:
    """Venue staff (VERIFIER) read a ticket QR and mark one use of a perk on chain."""

    def __init__(
        self,
        session: Session,
        shop: ShopService,
        *,
        outbox: Callable[[], OutboxService],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self.shop = shop
        self._outbox = outbox
        self._now = now

    def lookup(self, verifier: User | None, town: Town, code: object, locale: str) -> TicketView:
        """The ticket's holder and uses left. Raises AuthenticationRequired/Forbidden (not a
        verifier of `town`) and TicketRefused (invalid, expired, another town, transferred)."""
        require_town_role(verifier, town.id, VERIFIER)
        data = self.shop.read_ticket(code)
        if data["t"] != town.slug:
            raise TicketRefused(N_("This ticket belongs to another town."), code="other_town")
        c = self.session.get(Collection, int(data["c"]))
        if c is None or c.town_id != town.id:
            raise TicketRefused(N_("This ticket belongs to another town."), code="other_town")
        token_id = int(data["i"])
        owner = self.shop.owner_of(c, token_id)
        if owner is None or owner != data["h"]:
            raise TicketRefused(
                N_("This ticket was transferred to someone else: it is no longer valid."),
                code="transferred",
            )
        perks = self.shop.perks(c, locale)
        for p in perks:
            p.uses_left = self.shop.uses_left(c, token_id, p.perk_id)
        status, usable = verdict(perks, self._now())
        return TicketView(town, c, token_id, owner, perks, self._name_of(owner), status, usable)

    def _name_of(self, address: str) -> str:
        """The display name of the person whose account holds `address` ("" for none)."""
        name = self.session.scalar(
            select(User.display_name)
            .join(Address, Address.user_id == User.id)
            .where(func.lower(Address.address) == address.lower())
        )
        return (name or "").strip()

    def check_in(
        self,
        verifier: User | None,
        town: Town,
        code: object,
        perk_id: object,
        idempotency_key: object,
        locale: str = "en",
    ) -> CheckIn:
        """Mark one use of `perk_id` on the ticket (usePerk by the verifier role key, via the
        outbox). The same idempotency key returns the first check-in and changes nothing."""
        require_town_role(verifier, town.id, VERIFIER)
        assert verifier is not None
        if not isinstance(idempotency_key, str) or not 8 <= len(idempotency_key) <= 100:
            raise InvalidInput(N_("A request key of 8 to 100 characters is required."))
        key = f"checkin:{town.id}:{idempotency_key}"
        existing = self.session.scalar(select(CheckIn).where(CheckIn.idempotency_key == key))
        if existing is not None:
            return existing
        # A twin with this key (a double tap at the venue) may commit after the look-up above
        # and use the last use: the refusal that follows gives way to the twin's check-in.
        return first_answer(
            self.session,
            lambda: self._check_in_new(verifier, town, code, perk_id, key, locale),
            lambda: self.session.scalar(select(CheckIn).where(CheckIn.idempotency_key == key)),
            also=(AppError,),
        )

    def _check_in_new(
        self, verifier: User, town: Town, code: object, perk_id: object, key: str, locale: str
    ) -> CheckIn:
        ticket = self.lookup(verifier, town, code, locale)
        perk = next((p for p in ticket.perks if p.perk_id == perk_id), None)
        if perk is None or isinstance(perk_id, bool):
            raise InvalidInput(N_("This ticket has no such perk."), perk_id=str(perk_id))
        if perk.valid_until is not None and perk.valid_until < self._now():
            raise TicketRefused(N_("This perk has expired."), code="perk_expired")
        if perk.uses_left is None:
            raise ServiceUnavailable(N_("The ticket cannot be checked right now; try again."))
        if perk.uses_left <= 0:
            raise TicketRefused(N_("This ticket has no uses left."), code="used_up")
        return self._insert_check_in(verifier, town, ticket, perk, key)

    def _insert_check_in(
        self, verifier: User, town: Town, ticket: TicketView, perk: Any, key: str
    ) -> CheckIn:
        row = CheckIn(
            idempotency_key=key,
            town_id=town.id,
            collection_id=ticket.collection.id,
            token_id=ticket.token_id,
            perk_id=perk.perk_id,
            holder_address=ticket.holder,
            verifier_user_id=verifier.id,
            status="processing",
        )
        self.session.add(row)
        self.session.flush()  # the row's id is the outbox row's subject
        tx = self._outbox().enqueue(
            self.session,
            ContractCall(
                ticket.collection.contract_address or "",
                "usePerk",
                [ticket.token_id, perk.perk_id],
                artifact_name="FanCollection",
            ),
            sender=Sender.role("verifier", town_id=town.id, user_id=verifier.id),
            key=key,
            subject=Subject("check_in", row.id),
            audit=AuditEntry(
                actor=f"user:{verifier.id}",
                action="nft.use_perk",
                subject_type="token",
                subject_id=f"{ticket.collection.contract_address}:{ticket.token_id}",
                reason=f"check-in: perk {perk.perk_id}",
                details={"holder": ticket.holder, "perk_id": perk.perk_id},
            ),
        )
        row.outbox_tx_id = tx.id
        self.session.commit()
        return row
