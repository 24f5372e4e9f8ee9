"""Votes whose relayed transaction never made it to the chain (issue 10 §4).

A vote of ours is "submitted" until its VoteCast event is indexed. When the transaction ends
failed, reverted or cancelled (for example a deep reorg handed its nonce to another transaction,
or the re-sent ballot reverted because voting had closed on the new branch), the vote is marked
"failed": the results then show it neither as counted nor as being recorded, which is what the
chain says. A failed vote is no vote: while voting is open its voter may cast a new ballot,
which takes the row over (backend/dao/common.py `add_vote`). If a later reorg brings its
VoteCast back, the indexer counts it again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.dao.common import FAILED_TX_STATES, LOST, SUBMITTED
from backend.dao.models import DaoPollVote, DaoVote

NOT_COUNTED = LOST


def mark_lost_votes(session: Session) -> int:
    """Mark "failed" every submitted vote (proposal or poll) whose transaction failed; commits.
    Returns how many were marked."""
    marked = 0
    model: Any
    for model in (DaoVote, DaoPollVote):
        sent = session.scalars(
            select(model.outbox_tx_id).where(
                model.state == SUBMITTED, model.outbox_tx_id.is_not(None)
            )
        ).all()
        failed = chain.outbox_states(session, sent, only=FAILED_TX_STATES)
        if not failed:
            continue
        # Guarded by the failed transaction: a new ballot that took a row over meanwhile
        # (its own, new transaction) is not marked.
        done = session.execute(
            update(model)
            .where(model.state == SUBMITTED, model.outbox_tx_id.in_(sorted(failed)))
            .values(state=NOT_COUNTED)
            .execution_options(synchronize_session="fetch")
        )
        marked += int(done.rowcount or 0)
    session.commit()
    return marked
