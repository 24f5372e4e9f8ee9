"""Indexer handlers: the governors' events projected onto dao_proposals / dao_votes (a vote
is VoteCast or, cast with params, VoteCastWithParams).

Imported from backend/dao/tasks.py so they register in the web app and the worker alike. Each
handler runs inside the indexing transaction; `revert` undoes `apply` when a reorg drops events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.chain.api import ChainEvent, EventHandler, handler
from backend.dao import external
from backend.dao.models import DaoPoll, DaoPollVote, DaoProposal, DaoVote

GOVERNOR = "TownGovernor"
POLL = "TownPoll"


def _proposal(s: Session, ev: ChainEvent) -> DaoProposal | None:
    return s.scalar(
        select(DaoProposal).where(
            DaoProposal.governor_address == ev.contract_address,
            DaoProposal.proposal_id == str(int(ev.args["proposalId"])),
        )
    )


def _vote_of(s: Session, model: Any, row_column: str, row_id: int, voter: str) -> Any:
    """The `model` vote (DaoVote / DaoPollVote) of `voter` on the proposal or poll `row_id`."""
    return s.scalar(select(model).where(getattr(model, row_column) == row_id, model.voter == voter))


def _count_vote(
    s: Session, ev: ChainEvent, model: Any, row_column: str, row_id: int, choice: str
) -> None:
    """Record a VoteCast event: the voter's row (ours or a new one) is counted with the
    event's `choice` (support / option) and weight."""
    voter = str(ev.args["voter"])
    v = _vote_of(s, model, row_column, row_id, voter)
    if v is None:
        v = model(**{row_column: row_id}, voter=voter)
        s.add(v)
    setattr(v, choice, int(ev.args[choice]))
    v.weight = Decimal(int(ev.args["weight"]))
    v.state = "counted"
    v.tx_hash = ev.tx_hash
    v.block_number = ev.block_number


def _uncount_vote(s: Session, ev: ChainEvent, model: Any, row_column: str, row_id: int) -> None:
    """Undo `_count_vote`: a vote from outside is deleted; ours goes back to "submitted" (the
    relayed transaction is re-mined or fails)."""
    v = _vote_of(s, model, row_column, row_id, str(ev.args["voter"]))
    if v is None:
        return
    if v.user_id is None:
        s.delete(v)
    else:
        v.state, v.tx_hash, v.block_number = "submitted", None, None


def _set_canceled(
    s: Session,
    events: Sequence[ChainEvent],
    find: Callable[[Session, ChainEvent], Any],
    value: bool,
) -> None:
    for ev in events:
        row = find(s, ev)
        if row is not None:
            row.canceled = value


def created(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is None:
            # Proposed outside the platform: listed all the same, marked, and staff alerted.
            p = external.record_external(s, ev)
            if p is None:
                continue  # not a town chamber's
        p.proposer = str(ev.args["proposer"])
        p.created_block = ev.block_number
        p.created_tx_hash = ev.tx_hash
        p.snapshot_block = int(ev.args["voteStart"])
        p.deadline_block = int(ev.args["voteEnd"])


def uncreated(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None and p.external:
            external.unrecord_external(s, p)
        elif p is not None:
            p.proposer = None
            p.created_block = p.created_tx_hash = p.snapshot_block = p.deadline_block = None
            p.quorum = None  # of a snapshot the new branch may not have


def vote_cast(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None:
            _count_vote(s, ev, DaoVote, "proposal_row_id", p.id, "support")
    s.flush()


def vote_uncast(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None:
            _uncount_vote(s, ev, DaoVote, "proposal_row_id", p.id)


def queued(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None:
            p.queued_eta = int(ev.args["etaSeconds"])
            p.queued_tx_hash = ev.tx_hash


def unqueued(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None:
            p.queued_eta = p.queued_tx_hash = None


def executed(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None:
            p.executed_tx_hash = ev.tx_hash
            p.executed_block = ev.block_number


def unexecuted(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        p = _proposal(s, ev)
        if p is not None:
            p.executed_tx_hash = p.executed_block = None


def canceled(s: Session, events: Sequence[ChainEvent]) -> None:
    _set_canceled(s, events, _proposal, True)


def uncanceled(s: Session, events: Sequence[ChainEvent]) -> None:
    _set_canceled(s, events, _proposal, False)


GOVERNOR_HANDLERS = (
    handler("ProposalCreated", created, uncreated, contract=GOVERNOR),
    handler("VoteCast", vote_cast, vote_uncast, contract=GOVERNOR),
    # A vote cast with params (castVoteWithReasonAndParams, which any Governor client may
    # send) is counted the same, but the governor emits this event instead of VoteCast.
    handler("VoteCastWithParams", vote_cast, vote_uncast, contract=GOVERNOR),
    handler("ProposalQueued", queued, unqueued, contract=GOVERNOR),
    handler("ProposalExecuted", executed, unexecuted, contract=GOVERNOR),
    handler("ProposalCanceled", canceled, uncanceled, contract=GOVERNOR),
)


# ---------------------------------------------------------------------------- TownPoll


def _poll(s: Session, ev: ChainEvent) -> DaoPoll | None:
    return s.scalar(
        select(DaoPoll).where(
            DaoPoll.poll_address == ev.contract_address,
            DaoPoll.poll_id == int(ev.args["pollId"]),
        )
    )


def poll_created(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        poll = s.scalar(
            select(DaoPoll).where(
                DaoPoll.poll_address == ev.contract_address,
                DaoPoll.description == str(ev.args["description"]),
            )
        )
        if poll is None:
            continue  # created outside the platform: not listed (no bilingual text)
        poll.poll_id = int(ev.args["pollId"])
        poll.created_block = ev.block_number
        poll.created_tx_hash = ev.tx_hash
        poll.snapshot_block = int(ev.args["snapshot"])
        poll.deadline_block = int(ev.args["deadline"])
    s.flush()


def poll_uncreated(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        poll = _poll(s, ev)
        if poll is not None:
            poll.poll_id = poll.created_block = poll.created_tx_hash = None
            poll.snapshot_block = poll.deadline_block = None
    s.flush()


def poll_vote_cast(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        poll = _poll(s, ev)
        if poll is not None:
            _count_vote(s, ev, DaoPollVote, "poll_row_id", poll.id, "option")
    s.flush()


def poll_vote_uncast(s: Session, events: Sequence[ChainEvent]) -> None:
    for ev in events:
        poll = _poll(s, ev)
        if poll is not None:
            _uncount_vote(s, ev, DaoPollVote, "poll_row_id", poll.id)


def poll_canceled(s: Session, events: Sequence[ChainEvent]) -> None:
    _set_canceled(s, events, _poll, True)


def poll_uncanceled(s: Session, events: Sequence[ChainEvent]) -> None:
    _set_canceled(s, events, _poll, False)


POLL_HANDLERS = (
    handler("PollCreated", poll_created, poll_uncreated, contract=POLL),
    handler("VoteCast", poll_vote_cast, poll_vote_uncast, contract=POLL),
    handler("PollCanceled", poll_canceled, poll_uncanceled, contract=POLL),
)

# Every DAO handler, in the order the indexer runs them (backend/composition.py).
HANDLERS: tuple[EventHandler, ...] = (
    *external.TREASURY_HANDLERS,
    *GOVERNOR_HANDLERS,
    *POLL_HANDLERS,
)
