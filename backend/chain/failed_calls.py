"""Following a business row whose chain call failed, for every domain the same way.

The outbox ends a call failed (its estimate reverted: never sent), reverted (mined and undone)
or cancelled (its deadline passed, or a no-op took its nonce); none of them is mined afterwards,
short of a reorg (which the domains' handlers follow). A row waiting for that call (a grant, a
shop's registration, a ticket's check-in) must then move on, or it waits for ever.

`follow_failed_calls` moves each waiting row whose call failed with ONE conditional UPDATE (the
row, still in its waiting state, still naming that call), so followers running at once (a beat
task, a page reading the row, a second worker) move it once, and only the one that moved it
runs `moved` (the audit row, what the row gives back) in the same transaction. PostgreSQL
re-checks the row after the winner's lock; SQLite has one writer. Each row is committed on its
own, so no lock is held across rows (on SQLite an UPDATE that matched nothing holds the write
lock too: the transaction is ended either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from backend.chain.outbox.states import S
from backend.chain.read_models import OutboxState, outbox_state_in, outbox_states

# The outbox's end states of a call that was never executed: the one definition every domain
# follows (a row waiting for such a call must move on).
FAILED_CALL_STATES = (S.FAILED.value, S.REVERTED.value, S.CANCELLED.value)


def follow_failed_calls(
    session: Session,
    model: Any,
    *,
    status: InstrumentedAttribute[Any],
    waiting: str,
    call: InstrumentedAttribute[Any],
    values: dict[str, Any],
    moved: Callable[[Any, int, OutboxState], None],
    where: Sequence[Any] = (),
) -> int:
    """Move the rows of `model` whose `status` is `waiting` and whose call (`call`, an outbox
    id column) failed on chain, by `values`; `moved(row, call_id, call_state)` runs for each
    row this call moved (the row as it was read). Rows matching `where` only. Returns how many
    this call moved; the rows read are refreshed afterwards."""
    rows = session.scalars(
        select(model)
        .where(status == waiting, outbox_state_in(call, FAILED_CALL_STATES), *where)
        .order_by(model.id)
    ).all()
    if not rows:
        return 0
    calls = outbox_states(
        session, (int(getattr(r, call.key) or 0) for r in rows), only=FAILED_CALL_STATES
    )
    changed = 0
    for row in rows:
        # Read before the UPDATE (which leaves the object as it is): `moved` sees the row as it
        # was, e.g. what it had reserved, even if an earlier commit expired its attributes.
        call_id = int(getattr(row, call.key) or 0)
        state = calls.get(call_id)
        if state is None:
            continue
        done = session.execute(
            update(model)
            .where(model.id == row.id, status == waiting, call == call_id)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            changed += 1
            moved(row, call_id, state)
        # else: another follower got there first, or the chain confirmed it meanwhile
        session.commit()
    for row in rows:
        session.refresh(row)
    return changed
