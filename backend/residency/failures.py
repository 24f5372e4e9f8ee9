"""A resident's row when its pass's chain call fails.

The outbox ends a call as failed (its estimate reverted: never sent), reverted (mined and
undone) or cancelled (its deadline passed, or a no-op took its nonce). None of them is mined
afterwards, short of a reorg (which the handlers follow), so without this a row waited for a
PassIssued or PassRevoked that never comes: "issuing" for ever, and the person could not be
verified again, since only a revoked row is issued again.

- issuing -> failed: no pass exists. The person's page and the staff's list say so; verifying
  the person again (staff in person, or the person with the digital ID) issues it anew under
  the next generation's outbox key (services.py `_reissue`).
- revoking -> issued: the pass still exists and still votes. Staff see that the revocation
  failed (`failure_reasons`) and revoke it again, under a new outbox key.

Each change is ONE conditional UPDATE on the row's state and the failed call's id, so followers
running at once (the beat task, pages, a second verify) change it once and write one audit row
("residency.issue_failed" / "residency.revoke_failed"): PostgreSQL re-checks the row after the
winner's lock, SQLite has one writer.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.chain.api import FAILED_CALL_STATES
from backend.core.models import AuditLog
from backend.residency.models import FAILED, ISSUED, ISSUING, REVOKING, Resident

FAILED_TX = FAILED_CALL_STATES  # the outbox's: the call was never executed


def refresh_failed(session: Session, rows: Iterable[Resident]) -> None:
    """Move `rows` whose issue or revoke call failed on chain (see the module's docstring).
    Commits when this call changed a row; the rows whose call failed are read again either way
    (another process may have moved them first)."""
    rows = list(rows)
    issuing = {int(r.issue_tx_id): r for r in rows if r.state == ISSUING and r.issue_tx_id}
    revoking = {int(r.revoke_tx_id): r for r in rows if r.state == REVOKING and r.revoke_tx_id}
    if not issuing and not revoking:
        return
    failed = chain.outbox_states(session, [*issuing, *revoking], only=FAILED_TX)
    if not failed:
        return
    changed = False
    for tx_id, tx in failed.items():
        if tx_id in issuing:
            changed |= _move(session, issuing[tx_id], tx_id, tx, FAILED)
        else:
            changed |= _move(session, revoking[tx_id], tx_id, tx, ISSUED)
    if changed:
        session.commit()
    for tx_id in failed:
        session.refresh(issuing.get(tx_id) or revoking[tx_id])


def _move(session: Session, row: Resident, tx_id: int, tx: chain.OutboxState, to: str) -> bool:
    issue = to == FAILED
    column = Resident.issue_tx_id if issue else Resident.revoke_tx_id
    done = session.execute(
        update(Resident)
        .where(
            Resident.id == row.id,
            Resident.state == (ISSUING if issue else REVOKING),
            column == tx_id,
        )
        .values(state=to)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False  # another follower got there first, or the chain moved it meanwhile
    session.add(
        AuditLog(
            actor="system:outbox",
            action="residency.issue_failed" if issue else "residency.revoke_failed",
            subject_type="resident",
            subject_id=str(row.id),
            reason=(
                "the pass's issue failed on chain: no pass was issued"
                if issue
                else "the pass's revocation failed on chain: the pass is still valid"
            ),
            details={
                "town_id": row.town_id,
                "user_id": row.user_id,
                "generation": row.generation,
                "tx_state": tx.state,
                "error": tx.error,
            },
            town_id=row.town_id,
        )
    )
    return True


def failure_reasons(session: Session, rows: Iterable[Resident]) -> dict[int, str]:
    """Why the last call of each row failed, by resident id, for rows that show a failure: a
    failed issue, or an issued pass whose last revocation failed (the outbox's error, else its
    state)."""
    calls: dict[int, int] = {}
    for r in rows:
        if r.state == FAILED and r.issue_tx_id:
            calls[int(r.issue_tx_id)] = r.id
        elif r.state == ISSUED and r.revoke_tx_id:
            calls[int(r.revoke_tx_id)] = r.id
    found = chain.outbox_states(session, calls, only=FAILED_TX)
    return {calls[i]: (s.error or s.state) for i, s in found.items()}


def waiting(session: Session) -> list[Resident]:
    """Rows whose call is on its way (the beat task's candidates)."""
    return list(session.scalars(select(Resident).where(Resident.state.in_((ISSUING, REVOKING)))))
