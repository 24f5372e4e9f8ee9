"""Points grants whose issue call failed on chain: recorded, their daily cap given back, and
sent again by town staff.

A grant (welcome points, an event's prize: `PointsService.grant`) queues one `issue` call. The
outbox may end it failed (its estimate reverted: never sent), reverted (mined and undone) or
cancelled (its deadline passed, or a no-op took its nonce); none of them is mined afterwards,
short of a reorg (the handlers follow that: a PointsIssued of the call confirms the grant
whatever its state). Before this the grant stayed "pending" for ever: no audit row said that
the mint failed, the programme's daily cap kept the amount it had reserved, and the grant's
UNIQUE key meant that the person never got the points.

- pending -> failed (`fail_lost_grants`): ONE conditional UPDATE on the grant's state and the
  failed call's id, so followers running at once (the beat task `points.fail_lost_grants`,
  pages reading grant states, staff's list) change it once; the winner alone gives the day's
  cap back (`release_daily`) and writes the audit row "points.issue_failed", in the same
  transaction. PostgreSQL re-checks the row after the winner's lock, SQLite has one writer.
- failed -> pending (`GrantRetries.retry`, the console's "Failed grants" page): town staff send
  it again, one grant or all of the town's. Again ONE conditional UPDATE (state, failed call,
  attempt number) decides which of concurrent retries queues the call, under a new outbox key
  per attempt (`points.grant:<id>:<attempt>`: the failed call's key would answer that call
  again and send nothing). Under that row lock every earlier call of the grant must have ended
  failed: one the chain may still mine (a reorg put it back on its way) or did mine is never
  followed by another issue. The retry reserves the cap again on the day it is sent (staff see
  DailyCapReached, nothing written, when the day is full) and writes its own "points.issue" row.

Staff retry rather than the platform by itself: a grant fails for reasons a second identical
call usually meets again (the programme closed on chain, the issuer key without its role, the
chain congested past the deadline); staff see why on the page and choose when to send it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import AuditEntry, ContractCall, OutboxService, Sender, Subject
from backend.core.db import utcnow
from backend.core.errors import N_, AppError
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.points.errors import (
    GrantNotFound,
    GrantNotRetryable,
    PointsNotAvailable,
    ProgrammeInactive,
)
from backend.points.models import GRANT_FAILED, GRANT_PENDING, PointsGrant, TownProgramme
from backend.points.programmes import by_reason
from backend.points.town_settings import (
    INACTIVE,
    jst_day,
    release_daily,
    reserve_daily,
    town_programme,
)
from backend.regions.models import Town

FAILED_TX = chain.FAILED_CALL_STATES
SUBJECT = "points_grant"  # the outbox subject of every issue call of a grant
MAX_PER_CLICK = 200  # "send all again" takes this many per request (one transaction each)


def fail_lost_grants(session: Session, *where: Any) -> int:
    """Mark the pending grants (those matching `where`, e.g. one grant's id) whose issue call
    failed on chain "failed", giving their daily cap back, with one audit row each (chain.api
    follow_failed_calls: once whoever follows, each committed on its own). Returns how many
    this call changed."""

    def moved(grant: PointsGrant, tx_id: int, tx: chain.OutboxState) -> None:
        day = grant.reserved_day  # as read: the UPDATE cleared it
        if day is not None:
            release_daily(
                session, grant.town_id, grant.programme_id, grant.user_id, int(grant.amount), day
            )
        session.add(
            AuditLog(
                actor="system:outbox",
                action="points.issue_failed",
                subject_type="user",
                subject_id=str(grant.user_id),
                amount=grant.amount,
                reason="the grant's issue failed on chain: no points were issued; "
                "its daily cap is given back",
                details={
                    "grant_id": grant.id,
                    "town_id": grant.town_id,
                    "programme_id": grant.programme_id,
                    "grant_key": grant.grant_key,
                    "attempt": grant.attempts,
                    "outbox_tx_id": tx_id,
                    "tx_state": tx.state,
                    "error": tx.error,
                    "released_day": day.isoformat() if day is not None else None,
                },
                town_id=grant.town_id,
            )
        )

    return chain.follow_failed_calls(
        session,
        PointsGrant,
        status=PointsGrant.status,
        waiting=GRANT_PENDING,
        call=PointsGrant.outbox_tx_id,
        values={"status": GRANT_FAILED, "reserved_day": None},
        moved=moved,
        where=where,
    )


@dataclass(frozen=True)
class FailedGrant:
    """A failed grant as the console lists it: who, which programme, why its call failed."""

    grant: PointsGrant
    user: User
    programme: TownProgramme | None
    why: str

    @property
    def label(self) -> str:
        """The msgid of its kind's label (a town without its programme rows yet)."""
        kind = by_reason(self.grant.reason)
        return kind.label if kind is not None else ""

    @property
    def event_id(self) -> int | None:
        key = self.grant.grant_key
        if key.startswith("event:") and key[6:].isdigit():
            return int(key[6:])
        return None


@dataclass
class RetryReport:
    """What "send all again" did: the grants queued, those refused (grant id -> the error),
    and how many failed grants it did not reach (past MAX_PER_CLICK) for another click."""

    queued: list[int] = field(default_factory=list)
    refused: dict[int, AppError] = field(default_factory=dict)
    left: int = 0


class GrantRetries:
    """Town STAFF's view of the town's failed grants and their retries, over one session."""

    def __init__(
        self,
        session: Session,
        outbox: Callable[[], OutboxService],
        *,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.session = session
        self._outbox = outbox
        self._now = now

    def failed(
        self, staff: User | None, town: Town, limit: int = MAX_PER_CLICK
    ) -> list[FailedGrant]:
        """The town's failed grants, oldest first (those waiting longest), with why."""
        require_town_role(staff, town.id, STAFF)
        fail_lost_grants(self.session, PointsGrant.town_id == town.id)
        rows = self.session.execute(
            select(PointsGrant, User)
            .join(User, User.id == PointsGrant.user_id)
            .where(PointsGrant.town_id == town.id, PointsGrant.status == GRANT_FAILED)
            .order_by(PointsGrant.id)
            .limit(limit)
        ).all()
        why = chain.outbox_states(
            self.session, (int(g.outbox_tx_id or 0) for g, _u in rows), only=FAILED_TX
        )
        programmes = {
            p.programme_id: p
            for p in self.session.scalars(
                select(TownProgramme).where(TownProgramme.town_id == town.id)
            )
        }
        out = []
        for g, u in rows:
            tx = why.get(int(g.outbox_tx_id or 0))
            reason = (tx.error or tx.state) if tx is not None else ""
            out.append(FailedGrant(g, u, programmes.get(int(g.programme_id)), reason))
        return out

    def count_failed(self, staff: User | None, town: Town) -> int:
        """How many of the town's grants are failed (town STAFF)."""
        require_town_role(staff, town.id, STAFF)
        return self._count_failed(town)

    def _count_failed(self, town: Town) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(PointsGrant)
                .where(PointsGrant.town_id == town.id, PointsGrant.status == GRANT_FAILED)
            )
            or 0
        )

    def retry(self, staff: User | None, town: Town, grant_id: object) -> tuple[PointsGrant, bool]:
        """Send one failed grant of the town again: (the grant, whether this call queued it).
        A grant that is not failed (confirmed, or already sent again by someone else) is
        returned unchanged. GrantNotFound (404) for an id that is not one of the town's grants;
        ProgrammeInactive, PointsNotAvailable, DailyCapReached, GrantNotRetryable (409):
        nothing written."""
        staff = require_town_role(staff, town.id, STAFF)
        grant_pk = db_id_or_none(grant_id)
        grant = self.session.get(PointsGrant, grant_pk) if grant_pk else None
        if grant is None or grant.town_id != town.id:
            raise GrantNotFound(N_("There is no such grant in this town."))
        fail_lost_grants(self.session, PointsGrant.id == grant.id)
        self.session.refresh(grant)
        if grant.status != GRANT_FAILED:
            return grant, False
        return grant, self._send_again(staff, town, grant)

    def retry_all(self, staff: User | None, town: Town) -> RetryReport:
        """Send every failed grant of the town again (MAX_PER_CLICK at a time), each in its own
        transaction; a grant refused (its day's cap is full, its programme closed) stays
        failed and is reported."""
        staff = require_town_role(staff, town.id, STAFF)
        fail_lost_grants(self.session, PointsGrant.town_id == town.id)
        ids = list(
            self.session.scalars(
                select(PointsGrant.id)
                .where(PointsGrant.town_id == town.id, PointsGrant.status == GRANT_FAILED)
                .order_by(PointsGrant.id)
                .limit(MAX_PER_CLICK)
            )
        )
        report = RetryReport()
        for grant_id in ids:
            grant = self.session.get(PointsGrant, grant_id)
            if grant is None:
                continue
            self.session.refresh(grant)
            if grant.status != GRANT_FAILED:
                continue  # another member of staff sent it meanwhile
            try:
                if self._send_again(staff, town, grant):
                    report.queued.append(grant_id)
            except AppError as exc:  # nothing was written for this grant
                report.refused[grant_id] = exc
        report.left = max(self._count_failed(town) - len(report.refused), 0)
        return report

    def _send_again(self, staff: User, town: Town, grant: PointsGrant) -> bool:
        failed_tx, attempt = grant.outbox_tx_id, grant.attempts
        pid, amount = int(grant.programme_id), int(grant.amount)
        row = town_programme(self.session, town.id, pid)
        if row is not None and not row.active:
            raise ProgrammeInactive(INACTIVE)
        if not town.points_address:
            raise PointsNotAvailable(N_("This town has no points yet."))
        reason = grant.reason  # migration 0050 gave every earlier grant its reason
        programme = by_reason(reason)
        day = jst_day(self._now())
        try:
            done = self.session.execute(
                update(PointsGrant)
                .where(
                    PointsGrant.id == grant.id,
                    PointsGrant.status == GRANT_FAILED,
                    PointsGrant.outbox_tx_id == failed_tx,
                    PointsGrant.attempts == attempt,
                )
                .values(status=GRANT_PENDING, attempts=attempt + 1, reserved_day=day)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                self.session.rollback()  # another retry won: its call is the one
                self.session.refresh(grant)
                return False
            # The grant's row is ours until commit: no other retry or follower reads past here.
            # An earlier call the chain may still mine (a reorg put it back on its way) or did
            # mine (not indexed yet) must not be followed by a second issue.
            calls = chain.calls_of_subject(self.session, SUBJECT, grant.id)
            if any(c.state not in FAILED_TX for c in calls):
                raise GrantNotRetryable(
                    N_(
                        "An earlier attempt of these points may still arrive: wait until the "
                        "page shows it failed or arrived."
                    )
                )
            reserve_daily(self.session, town.id, pid, grant.user_id, amount, day, row)
            tx = self._outbox().enqueue(
                self.session,
                ContractCall(
                    str(town.points_address),
                    "issue",
                    (grant.address, amount, pid, reason),
                    artifact_name="RegionPoints",
                ),
                sender=Sender.role("issuer", town_id=town.id),
                key=f"points.grant:{grant.id}:{attempt + 1}",
                subject=Subject(SUBJECT, grant.id),
                audit=AuditEntry(
                    actor=f"user:{staff.id}",
                    action="points.issue",
                    subject_type="user",
                    subject_id=str(grant.user_id),
                    amount=amount,
                    reason=f"{programme.name if programme else reason} points sent again "
                    "by town staff",
                    details={
                        "town_id": town.id,
                        "programme_id": pid,
                        "grant_id": grant.id,
                        "grant_key": grant.grant_key,
                        "attempt": attempt + 1,
                        "retry_of": failed_tx,
                    },
                ),
            )
            self.session.execute(
                update(PointsGrant)
                .where(PointsGrant.id == grant.id)
                .values(outbox_tx_id=tx.id)
                .execution_options(synchronize_session=False)
            )
            self.session.commit()
        except Exception:
            self.session.rollback()
            raise
        self.session.refresh(grant)
        return True
