"""Votes whose relayed transaction never made it to the chain (issue 10 §4).

A vote of ours is "submitted" until its VoteCast event is indexed. When the transaction ends
failed, reverted or cancelled (for example a deep reorg handed its nonce to another transaction,
or the re-sent ballot reverted because voting had closed on the new branch), the vote is marked
"failed": the results then show it neither as counted nor as being recorded, which is what the
chain says. If a later reorg brings its VoteCast back, the indexer counts it again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain import api as chain
from backend.dao.common import FAILED_TX_STATES
from backend.dao.models import DaoPollVote, DaoVote

NOT_COUNTED = "failed"


def mark_lost_votes(session: Session) -> int:
    """Mark "failed" every submitted vote (proposal or poll) whose transaction failed; commits.
    Returns how many were marked."""
    marked = 0
    model: Any
    for model in (DaoVote, DaoPollVote):
        submitted = session.scalars(
            select(model).where(model.state == "submitted", model.outbox_tx_id.is_not(None))
        ).all()
        failed = chain.outbox_states(
            session, (v.outbox_tx_id for v in submitted), only=FAILED_TX_STATES
        )
        votes = [v for v in submitted if v.outbox_tx_id in failed]
        for v in votes:
            v.state = NOT_COUNTED
        marked += len(votes)
    session.commit()
    return marked
