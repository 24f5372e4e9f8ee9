"""Settlement state changes, each ONE conditional UPDATE (compare-and-set), so concurrent calls
on SQLite or PostgreSQL have exactly one winner and write exactly one audit row (issue 11 §3):

  redeeming -> requested            the burn is indexed (handlers.py)
  redeeming -> failed               the burn's transaction failed or reverted: with the reason;
                                    nothing was burned, the shop keeps its points
  requested -> approved             town staff approve; above the town's four-eyes amount a
                                    first approval is recorded and a second, different staff
                                    member's approval moves it to approved
  approved  -> settled              marked paid with the bank reference (anyone of the staff)

Redemptions of one shop are serialised by `lock_merchant` (a no-op UPDATE of the shop's row:
a row lock on PostgreSQL, the write lock on SQLite) before its balance is read, so two
redemptions that together exceed it are not both accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from backend.accounts.models import User
from backend.accounts.roles import STAFF, require_town_role
from backend.chain import api as chain
from backend.chain.api import FAILED_CALL_STATES
from backend.core.errors import N_, Conflict
from backend.core.models import AuditLog
from backend.core.numbers import db_id_or_none
from backend.core.upsert import lock_row
from backend.merchants import limits
from backend.merchants.errors import SettlementNotFound, SettlementNotReady
from backend.merchants.models import (
    APPROVED,
    REDEEMING,
    REQUESTED,
    SETTLED,
    SETTLEMENT_FAILED,
    Merchant,
    Settlement,
)

_FAILED_TX = FAILED_CALL_STATES  # the outbox's: the call was never executed


class SecondApproverNeeded(Conflict):
    code = "second_approver_needed"


def lock_merchant(session: Session, merchant_id: int) -> None:
    """Serialise money-out of one shop: an UPDATE that changes nothing but takes the row's lock
    (PostgreSQL) or the database's write lock (SQLite) until the caller commits. Reads after it
    see every redemption committed before it."""
    lock_row(session, Merchant.status, Merchant.id == merchant_id)


def refresh_failed(session: Session, rows: Iterable[Settlement]) -> None:
    """Mark settlements whose burn failed on chain "failed" with the reason (commits if any)."""
    waiting = {s.outbox_tx_id: s for s in rows if s.status == REDEEMING and s.outbox_tx_id}
    if not waiting:
        return
    txs = chain.outbox_states(session, waiting, only=_FAILED_TX)
    changed = False
    for tx_id, tx in txs.items():
        state, error = tx.state, tx.error
        s = waiting[tx_id]
        reason = f"burn {state}" + (f": {error}" if error else "")
        done = session.execute(
            update(Settlement)
            .where(Settlement.id == s.id, Settlement.status == REDEEMING)
            .values(status=SETTLEMENT_FAILED, failure_reason=reason[:500])
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            changed = True
            session.add(
                AuditLog(
                    actor="system:outbox",
                    action="settlement.fail",
                    subject_type="settlement",
                    subject_id=str(s.id),
                    amount=s.amount,
                    reason="the burn failed on chain; the shop keeps its points",
                    details={"merchant_id": s.merchant_id, "tx_state": state, "error": error},
                )
            )
    if changed:
        session.commit()
        for s in waiting.values():
            session.refresh(s)


def _settlement(session: Session, settlement_id: object) -> Settlement:
    s = session.get(Settlement, i) if (i := db_id_or_none(settlement_id)) else None
    if s is None:
        raise SettlementNotFound(N_("There is no such settlement."))
    return s


def _cas(session: Session, s: Settlement, where: list, values: dict) -> bool:  # type: ignore[type-arg]
    done = session.execute(
        update(Settlement)
        .where(Settlement.id == s.id, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def approve(
    session: Session, user: User | None, settlement_id: object, now: dt.datetime
) -> Settlement:
    """Town STAFF approve a requested settlement. Up to the town's four-eyes amount one
    approval suffices; above it the first approval is recorded and a second, different staff
    member's approval makes it "approved". AuditLog "settlement.approve" each time. Commits."""
    s = _settlement(session, settlement_id)
    user = require_town_role(user, s.town_id, STAFF)
    refresh_failed(session, [s])
    if s.status in (APPROVED, SETTLED) and user.id in (s.approved_by, s.second_approved_by):
        return s  # the same click again
    if s.status != REQUESTED:
        raise SettlementNotReady(N_("This settlement cannot be approved in its state."))
    threshold = limits.town_limit(session, s.town_id, "four_eyes_amount")
    needs_two = int(s.amount) > threshold
    step = "approve"
    if not needs_two:
        ok = _cas(
            session,
            s,
            [Settlement.status == REQUESTED],
            {"status": APPROVED, "approved_by": user.id, "approved_at": now},
        )
    elif s.approved_by is None:
        step = "first_approval"
        ok = _cas(
            session,
            s,
            [Settlement.status == REQUESTED, Settlement.approved_by.is_(None)],
            {"approved_by": user.id, "approved_at": now},
        )
    elif s.approved_by == user.id:
        raise SecondApproverNeeded(
            N_("This amount needs a second approval by another member of staff.")
        )
    else:
        step = "second_approval"
        ok = _cas(
            session,
            s,
            [
                Settlement.status == REQUESTED,
                Settlement.approved_by.is_not(None),
                Settlement.approved_by != user.id,
            ],
            {"status": APPROVED, "second_approved_by": user.id, "second_approved_at": now},
        )
    if not ok:
        session.rollback()
        raise SettlementNotReady(N_("Someone else changed this settlement. Reload the page."))
    session.add(
        AuditLog(
            actor=f"user:{user.id}",
            action="settlement.approve",
            subject_type="settlement",
            subject_id=str(s.id),
            amount=s.amount,
            reason=f"settlement {step} by town staff",
            details={"merchant_id": s.merchant_id, "step": step, "four_eyes_amount": threshold},
        )
    )
    session.commit()
    session.refresh(s)
    return s


def settle(
    session: Session, user: User | None, settlement_id: object, reference: str, now: dt.datetime
) -> Settlement:
    """Mark an approved settlement paid (approved -> settled by compare-and-set): of concurrent
    calls exactly one wins and writes the audit row; the others get 409. The winner's own
    reference again answers the settlement unchanged. Commits."""
    s = _settlement(session, settlement_id)
    user = require_town_role(user, s.town_id, STAFF)
    ok = _cas(
        session,
        s,
        [Settlement.status == APPROVED],
        {"status": SETTLED, "bank_reference": reference, "settled_by": user.id, "settled_at": now},
    )
    if not ok:
        session.rollback()
        session.refresh(s)
        if s.status == SETTLED:
            if s.bank_reference == reference:
                return s
            raise SettlementNotReady(N_("This settlement was already paid."))
        if s.status == SETTLEMENT_FAILED:
            raise SettlementNotReady(N_("This settlement failed; nothing is to be paid."))
        if s.status == REQUESTED:
            raise SettlementNotReady(
                N_("This settlement needs the approval of town staff before it is paid.")
            )
        raise SettlementNotReady(
            N_("The points of this settlement are not burned on chain yet; try again shortly.")
        )
    session.add(
        AuditLog(
            actor=f"user:{user.id}",
            action="settlement.pay",
            subject_type="settlement",
            subject_id=str(s.id),
            amount=s.amount,
            reason="settled in yen by bank transfer",
            details={"merchant_id": s.merchant_id, "bank_reference": reference, "ref": s.ref},
        )
    )
    session.commit()
    session.refresh(s)
    return s
