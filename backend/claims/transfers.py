"""Claim transfers following their outbox rows, and the claimed points that could not be moved.

A claimed wallet's points of a town go to their owner by a relayed `transfer` (services.py
`_move`). A transfer whose call the outbox ends as failed, reverted or cancelled becomes
"failed" and the next beat queues another; after MAX_FAILED_MOVES failures of one wallet and
town the mover stops (a call that keeps failing would keep costing the town gas). Before, that
stop was only a line in the worker's log: the person's points sat in the claim wallet, shown
to them as "on their way", and nobody at the town knew (ADR 0017 "staff look"). Now the failure
that reaches the limit writes an audit row "points.claim.move_stuck" and raises an operator
alert (`outbox_alerts`, kind ALERT_KIND, through `chain.raise_alert`), and the town's staff see
the people and points concerned where they see what waits for claims (`stuck_in_town`).

Each move to "failed" (or "sent") is ONE guarded UPDATE on the transfer's status and its call's
id, so movers running at once (two beats, a slow worker) move a transfer once, and only the
one that moved the transfer reaching the limit writes the audit row and raises the alert:
PostgreSQL re-checks the row after the winner's lock, SQLite has one writer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import FAILED_CALL_STATES
from backend.claims.models import FAILED, LIVE, QUEUED, SENT, TAKEN, ClaimTransfer, PointsClaim
from backend.core.models import AuditLog

log = logging.getLogger(__name__)

MAX_FAILED_MOVES = 3  # after this many failed transfers of one wallet and town, staff look
ALERT_KIND = "claim_move_stuck"
_OUTBOX_FAILED = FAILED_CALL_STATES  # the outbox's: the call was never executed
_OUTBOX_SENT = ("sent", "replaced", "confirmed")


def alert_subject(wallet_id: int, town_id: int) -> str:
    return f"claim_wallet:{wallet_id}:town:{town_id}"


def follow(session: Session, transfers: Sequence[ClaimTransfer]) -> None:
    """Live transfers follow their outbox rows: sent, or failed (then another may follow).
    Confirmed is the indexer's word (handlers.py), so the balance read next is final. Every
    transfer of `transfers` that this call or another follower moved is read again."""
    live = [t for t in transfers if t.status in LIVE and t.outbox_tx_id is not None]
    states = chain.outbox_states(session, [int(t.outbox_tx_id or 0) for t in live])
    for t in live:
        st = states.get(int(t.outbox_tx_id or 0))
        if st is None:
            continue
        if st.state in _OUTBOX_FAILED:
            error = (st.error or st.state)[:500]
            if _move(session, t, LIVE, FAILED, error=error):
                log.warning("claim transfer %s failed: %s", t.id, error)
                _stop_if_stuck(session, t)
        elif st.state in _OUTBOX_SENT and t.status == QUEUED:
            _move(session, t, (QUEUED,), SENT)


def _move(
    session: Session,
    t: ClaimTransfer,
    from_states: tuple[str, ...],
    to: str,
    *,
    error: str | None = None,
) -> bool:
    """Move `t` to `to` if it is still in `from_states` and waits on the same call; True when
    this call moved it. `t` is read again either way."""
    values: dict[str, object] = {"status": to}
    if error is not None:
        values["error"] = error
    done = session.execute(
        update(ClaimTransfer)
        .where(
            ClaimTransfer.id == t.id,
            ClaimTransfer.status.in_(from_states),
            ClaimTransfer.outbox_tx_id == t.outbox_tx_id,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(t)
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def failures(session: Session, wallet_id: int, town_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ClaimTransfer)
            .where(
                ClaimTransfer.wallet_id == wallet_id,
                ClaimTransfer.town_id == town_id,
                ClaimTransfer.status == FAILED,
            )
        )
        or 0
    )


def _stop_if_stuck(session: Session, t: ClaimTransfer) -> None:
    """`t` has just failed: if it is the failure that stops the mover, say so once."""
    n = failures(session, t.wallet_id, t.town_id)
    if n != MAX_FAILED_MOVES:
        return
    amount = int(t.amount)
    session.add(
        AuditLog(
            actor="system:claims",
            action="points.claim.move_stuck",
            subject_type="claim_transfer",
            subject_id=str(t.id),
            amount=amount,
            reason=(
                f"claimed points not moved after {n} failed transfers: they stay in the claim "
                "wallet until someone looks"
            ),
            details={
                "town_id": t.town_id,
                "wallet_id": t.wallet_id,
                "user_id": t.user_id,
                "failures": n,
                "error": t.error,
            },
            town_id=t.town_id,
        )
    )
    message = (
        f"claim wallet {t.wallet_id}: {amount} points of town {t.town_id} claimed by user "
        f"{t.user_id} were not moved after {n} failed transfers (last: {t.error}); the mover "
        "stopped"
    )
    log.error("ALERT %s %s: %s", ALERT_KIND, alert_subject(t.wallet_id, t.town_id), message)
    chain.raise_alert(session, ALERT_KIND, alert_subject(t.wallet_id, t.town_id), message)


def stuck_in_town(session: Session, town_id: int) -> tuple[int, int]:
    """(people, points) of the town's claimed points the mover gave up on: claims taken in a
    wallet and town whose transfers failed MAX_FAILED_MOVES times."""
    stuck = (
        select(ClaimTransfer.wallet_id)
        .where(ClaimTransfer.town_id == town_id, ClaimTransfer.status == FAILED)
        .group_by(ClaimTransfer.wallet_id)
        .having(func.count() >= MAX_FAILED_MOVES)
    )
    people, points = session.execute(
        select(
            func.count(func.distinct(PointsClaim.taken_by)),
            func.coalesce(func.sum(PointsClaim.amount), 0),
        ).where(
            PointsClaim.town_id == town_id,
            PointsClaim.state == TAKEN,
            PointsClaim.wallet_id.in_(stuck),
        )
    ).one()
    return int(people or 0), int(points or 0)
