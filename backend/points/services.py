"""Points: a holder's balance (confirmed + pending), lots with expiry, history; the grants of
the programme kinds the platform issues by itself (welcome points).

Balances come from the indexer's ERC-20 projection (chain_token_balances) minus the holder's
expired lots, i.e. what `RegionPoints.balanceOf` answers; lots from the LotBook projection of the
indexed events (backend/points/chain_lots.py), history from `PointsEntry` rows. "Pending" is
what the platform sent (outbox rows) and the chain has not yet confirmed to the indexer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.accounts.models import CUSTODIAL, Address, User
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.db import get_db, utcnow
from backend.core.errors import N_
from backend.core.numbers import ascii_int, is_ascii_digits
from backend.core.times import JST  # re-exported: merchants and pages import it from here
from backend.points.chain_lots import chain_today, holder_book
from backend.points.errors import (
    EmailNotVerified,
    InvalidAmount,
    PointsNotAvailable,
    ProgrammeInactive,
)
from backend.points.grant_failures import GrantRetries, fail_lost_grants
from backend.points.lots import day_start
from backend.points.models import (
    GRANT_CONFIRMED,
    GRANT_FAILED,
    GRANT_PENDING,
    ISSUED,
    PAID,
    RECEIVED,
    REDEEMED,
    PointsEntry,
    PointsGrant,
)
from backend.points.programmes import WELCOME, Programme
from backend.points.town_settings import INACTIVE, jst_day, reserve_daily, town_programme
from backend.regions.models import Town

log = logging.getLogger(__name__)

MAX_AMOUNT = 10_000_000  # one payment or redemption; larger needs staff (not built yet)
_LIVE_OUTBOX = ("queued", "sent", "replaced", "confirmed")
_PENDING_WINDOW = dt.timedelta(days=2)


def parse_amount(value: object) -> int:
    """A whole number of points, 1..MAX_AMOUNT (ints or digit strings); InvalidAmount otherwise."""
    if isinstance(value, bool):
        value = None
    if is_ascii_digits(value):
        value = ascii_int(value)  # None past MAX_DIGITS (no ValueError)
    if not isinstance(value, int) or value <= 0 or value > MAX_AMOUNT:
        raise InvalidAmount(
            N_("Enter a whole number of points from 1 to %(max)d."), field="amount", max=MAX_AMOUNT
        )
    return value


@dataclass
class Lot:
    programme_id: int | None
    reason: str
    amount: int
    remaining: int
    issued_at: dt.datetime
    expires_at: dt.datetime | None

    @property
    def last_day(self) -> dt.date | None:
        """The last JST day the points can be used (they expire at 00:00 JST the day after)."""
        if self.expires_at is None:
            return None
        return (self.expires_at.astimezone(JST) - dt.timedelta(days=1)).date()


@dataclass
class HistoryItem:
    kind: str
    amount: int
    at: dt.datetime
    reason: str = ""
    pending: bool = False
    # The outbox transaction behind it: pages name the shop a payment went to by it.
    tx_id: int | None = None


@dataclass
class PointsSummary:
    town: Town
    address: str
    confirmed: int
    pending_in: int
    pending_out: int
    lots: list[Lot] = field(default_factory=list)
    history: list[HistoryItem] = field(default_factory=list)

    @property
    def available(self) -> int:
        return max(self.confirmed - self.pending_out, 0)


class PointsService:
    """Points over one DB session; `outbox` is built lazily (it is only needed to issue)."""

    def __init__(
        self,
        session: Session,
        outbox: Callable[[], OutboxService] | None = None,
        *,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._outbox = outbox
        self._now = now

    # ------------------------------------------------------------------ issuing

    def grant_welcome_points(
        self, user: User, town: Town, *, amount: int | None = None
    ) -> PointsGrant:
        """The welcome programme's grant (programmes.WELCOME): see `grant`."""
        return self.grant(user, town, WELCOME, amount=amount)

    def grant(
        self,
        user: User,
        town: Town,
        programme: Programme,
        *,
        amount: int | None = None,
        key: str = "",
        actor: str | None = None,
        details: Mapping[str, Any] | None = None,
        on_queued: Callable[[PointsGrant], None] | None = None,
    ) -> PointsGrant:
        """Issue `amount` points (the kind's Grant.amount by default) of a kind the platform
        grants by itself to the user's built-in account, once per user, town, programme and
        `key`: a second call returns the first grant and changes nothing.

        The issuer role key issues through the outbox; the grant, the outbox row and an AuditLog
        row "points.issue" commit together. Raises PointsNotAvailable when the town has no
        points contract or the user has no built-in account, and EmailNotVerified until the
        user's email address is verified (when the kind's Grant asks it: a fresh account costs
        nothing, a mailbox does). The town's programme row (backend/points/town_settings.py)
        gives the default amount (its welcome amount), ProgrammeInactive when the town closed
        it, and DailyCapReached (nothing written) past its daily caps per person or per town.

        `actor` (the kind's Grant.actor by default) and `details` go into the audit row. The
        caller's own pending rows commit with the grant (or roll back with it); `on_queued` is
        called with the new grant just before that commit, to link them to it (events link
        their check-in).
        """
        how = programme.grant
        if how is None:
            raise ValueError(f"programme {programme.name!r} is not granted by the platform")
        pid = programme.programme_id
        existing = self._grant(user.id, town.id, pid, key)
        if existing is not None:
            return existing
        # The town's own row (console, issue 13): its welcome amount, caps and active flag.
        row = town_programme(self.session, town.id, pid)
        if amount is None:
            amount = row.welcome_amount if row is not None and row.welcome_amount else how.amount
        amount = parse_amount(amount)
        if row is not None and not row.active:
            raise ProgrammeInactive(INACTIVE)
        if how.verified_email and user.email_verified_at is None:
            raise EmailNotVerified(N_("Confirm your email address to receive welcome points."))
        address = self._custodial_address(user)
        if not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        day = jst_day(self._now())
        grant = PointsGrant(
            user_id=user.id,
            town_id=town.id,
            programme_id=pid,
            grant_key=key,
            amount=Decimal(amount),
            address=address,
            reason=programme.reason,
            reserved_day=day,  # given back if the issue fails (grant_failures.py)
        )
        self.session.add(grant)
        try:
            self.session.flush()
            # Daily caps: the grant's UNIQUE row first (a replay never counts twice), then the
            # day's counters, in this transaction (DailyCapReached rolls everything back).
            reserve_daily(self.session, town.id, pid, user.id, amount, day, row)
            tx = self._outbox_service().enqueue(
                self.session,
                ContractCall(
                    town.points_address,
                    "issue",
                    (address, amount, pid, programme.reason),
                    artifact_name="RegionPoints",
                ),
                sender=Sender.role("issuer", town_id=town.id),
                key=f"points.{programme.name}:{town.id}:{user.id}:{pid}"
                + (f":{key}" if key else ""),
                subject=Subject("points_grant", grant.id),
                audit=AuditEntry(
                    actor=actor or how.actor,
                    action="points.issue",
                    subject_type="user",
                    subject_id=str(user.id),
                    amount=amount,
                    reason=f"{programme.name} points",
                    details={**(details or {}), "town_id": town.id, "programme_id": pid},
                ),
            )
            grant.outbox_tx_id = tx.id
            if on_queued is not None:
                on_queued(grant)
            self.session.commit()
        except IntegrityError:  # a concurrent call won
            self.session.rollback()
            found = self._grant(user.id, town.id, pid, key)
            if found is None:
                raise
            return found
        except Exception:
            self.session.rollback()
            raise
        log.info("%s points for user %s in town %s queued", programme.name, user.id, town.id)
        return grant

    def _grant(self, user_id: int, town_id: int, programme_id: int, key: str) -> PointsGrant | None:
        return self.session.scalar(
            select(PointsGrant).where(
                PointsGrant.user_id == user_id,
                PointsGrant.town_id == town_id,
                PointsGrant.programme_id == programme_id,
                PointsGrant.grant_key == key,
            )
        )

    def grant_states(self, grant_ids: Iterable[int]) -> dict[int, str]:
        """Each grant's state as a person sees it: GRANT_PENDING until the indexer has seen its
        issue, GRANT_CONFIRMED after, GRANT_FAILED when the chain refused its call (recorded
        here if no follower has yet: grant_failures.fail_lost_grants, which commits)."""
        ids = sorted({int(i) for i in grant_ids})
        if not ids:
            return {}
        fail_lost_grants(self.session, PointsGrant.id.in_(ids))
        rows = self.session.execute(
            select(PointsGrant.id, PointsGrant.status).where(PointsGrant.id.in_(ids))
        )
        return {
            grant_id: status if status in (GRANT_CONFIRMED, GRANT_FAILED) else GRANT_PENDING
            for grant_id, status in rows
        }

    def _outbox_service(self) -> OutboxService:
        if self._outbox is None:
            return chain.outbox_service()
        return self._outbox()

    def _custodial_address(self, user: User) -> str:
        address = self.session.scalar(
            select(Address.address)
            .where(Address.user_id == user.id, Address.kind == CUSTODIAL)
            .order_by(Address.id)
        )
        if address is None:
            raise PointsNotAvailable(N_("This account has no built-in wallet."))
        return str(address)

    # ------------------------------------------------------------------ reading

    def raw_balance(self, town: Town, address: str) -> int:
        """The balance the indexer has confirmed from Transfer events, expired lots included
        until they are burned (`rawBalanceOf`; 0 for an unknown holder)."""
        if not town.points_address:
            return 0
        return chain.balance_of(self.session, town.chain_id, town.points_address, address)

    def confirmed_balance(self, town: Town, address: str) -> int:
        """The spendable balance the indexer has confirmed: without expired lots, as the
        contract's `balanceOf` counts it at the chain's current day."""
        if not town.points_address:
            return 0
        book = holder_book(self.session, town.chain_id, town.points_address, address)
        expired = book.expired(address, chain_today(self.session, town.chain_id))
        return max(self.raw_balance(town, address) - expired, 0)

    def _unindexed_outbox(self, town: Town) -> list[chain.SentCall]:
        """Recent live calls to this town's points contract not yet seen by the indexer."""
        since = self._now() - _PENDING_WINDOW
        calls = chain.sent_calls(
            self.session, str(town.points_address), "RegionPoints", _LIVE_OUTBOX, since
        )
        if not calls:
            return []
        seen = set(
            self.session.scalars(
                select(PointsEntry.outbox_tx_id).where(
                    PointsEntry.outbox_tx_id.in_([c.id for c in calls])
                )
            )
        )
        return [c for c in calls if c.id not in seen]

    def pending(self, town: Town, address: str) -> tuple[int, int, list[HistoryItem]]:
        """(incoming, outgoing, items) the platform sent for `address` and the indexer has not
        confirmed yet."""
        incoming = outgoing = 0
        items: list[HistoryItem] = []
        if not town.points_address:
            return 0, 0, items
        rows = self._unindexed_outbox(town)
        for tx in rows:  # RegionPoints: issue(to, amount, programmeId, reason), issueBatch,
            args = tx.args  # transfer(to, value), redeem(amount, ref), payPartnerMerchant(..)
            if tx.function == "issue" and args.get("to") == address:
                amount = int(args["amount"])
                items.append(HistoryItem(ISSUED, amount, tx.created_at, str(args["reason"]), True))
                incoming += amount
            elif tx.function == "issueBatch" and address in (args.get("to") or ()):
                # issueBatch(to[], amounts[], programmeId, reason): staff's issuance by CSV
                for to, value in zip(args["to"], args["amounts"], strict=False):
                    if to == address:
                        amount = int(value)
                        items.append(
                            HistoryItem(ISSUED, amount, tx.created_at, str(args["reason"]), True)
                        )
                        incoming += amount
            elif tx.user_address == address and tx.function == "transfer":
                outgoing += int(args["value"])
                items.append(HistoryItem(PAID, int(args["value"]), tx.created_at, "", True, tx.id))
            elif tx.user_address == address and tx.function == "payPartnerMerchant":
                outgoing += int(args["amount"])  # a partner town's shop: burned here
                items.append(HistoryItem(PAID, int(args["amount"]), tx.created_at, "", True, tx.id))
            elif tx.user_address == address and tx.function == "redeem":
                outgoing += int(args["amount"])
                items.append(HistoryItem(REDEEMED, int(args["amount"]), tx.created_at, "", True))
            elif tx.function == "transfer" and args.get("to") == address:
                incoming += int(args["value"])
                items.append(HistoryItem(RECEIVED, int(args["value"]), tx.created_at, "", True))
        # Logs above head - confirmations that the platform did not send (an outside wallet).
        ours = {h for tx in rows for h in tx.tx_hashes}
        for ev in chain.pending_events(
            self.session, town.chain_id, contract_address=town.points_address
        ):
            if ev.event_name != "Transfer" or ev.tx_hash in ours:
                continue
            if ev.args.get("to") == address:
                incoming += int(ev.args["value"])
                items.append(HistoryItem(RECEIVED, int(ev.args["value"]), self._now(), "", True))
        return incoming, outgoing, items

    def entries(self, town: Town, address: str, limit: int = 200) -> list[PointsEntry]:
        return list(
            self.session.scalars(
                select(PointsEntry)
                .where(
                    PointsEntry.chain_id == town.chain_id,
                    PointsEntry.contract_address == town.points_address,
                    PointsEntry.holder == address,
                )
                .order_by(PointsEntry.block_number.desc(), PointsEntry.log_index.desc())
                .limit(limit)
            )
        )

    def lots(self, town: Town, address: str) -> list[Lot]:
        """The holder's unexpired lots as the contract keeps them (soonest expiry first), then
        the points that never expire; programme and reason from the issuance with that expiry."""
        if not town.points_address:
            return []
        book = holder_book(self.session, town.chain_id, town.points_address, address)
        today = chain_today(self.session, town.chain_id)
        issued = {
            e.expires_at.replace(tzinfo=dt.UTC) if e.expires_at.tzinfo is None else e.expires_at: e
            for e in sorted(self.entries(town, address, limit=10_000), key=lambda e: e.block_number)
            if e.kind == ISSUED and e.expires_at is not None
        }
        lots: list[Lot] = []
        for day, amount in book.lots_of(address):
            if day <= today:
                continue
            expires = dt.datetime.fromtimestamp(day_start(day), dt.UTC)
            src = issued.get(expires)
            lots.append(
                Lot(
                    src.programme_id if src else None,
                    src.reason if src else "",
                    amount,
                    amount,
                    src.recorded_at if src else expires,
                    expires,
                )
            )
        lasting = self.raw_balance(town, address) - sum(a for _, a in book.lots_of(address))
        if lasting > 0:
            lots.append(Lot(None, "", lasting, lasting, utcnow(), None))
        return lots

    def summary(self, town: Town, address: str) -> PointsSummary:
        """Balance, pending amounts, lots with expiry, and history (newest first)."""
        incoming, outgoing, pending_items = self.pending(town, address)
        history = pending_items + [
            HistoryItem(e.kind, int(e.amount), e.recorded_at, e.reason, tx_id=e.outbox_tx_id)
            for e in self.entries(town, address)
        ]
        return PointsSummary(
            town=town,
            address=address,
            confirmed=self.confirmed_balance(town, address),
            pending_in=incoming,
            pending_out=outgoing,
            lots=[lot for lot in self.lots(town, address) if lot.remaining > 0],
            history=history,
        )

    def summaries_for(self, user: User) -> list[PointsSummary]:
        """A summary per town with points, for the user's built-in account."""
        address = self._custodial_address(user)
        towns = self.session.scalars(
            select(Town).where(Town.points_address.is_not(None)).order_by(Town.id)
        ).all()
        seen: set[tuple[int, str | None]] = set()
        out = []
        for t in towns:  # one summary per points contract
            if (t.chain_id, t.points_address) not in seen:
                seen.add((t.chain_id, t.points_address))
                out.append(self.summary(t, address))
        return out


def points_service() -> PointsService:
    """A PointsService for the current app and request."""
    return PointsService(get_db().session(), chain.outbox_service)


def grant_retries() -> GrantRetries:
    """Town staff's failed grants and their retries (grant_failures.py) for the current app."""
    return GrantRetries(get_db().session(), chain.outbox_service)
