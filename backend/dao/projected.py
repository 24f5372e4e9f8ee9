"""A proposal as its governor would answer, read from the projection (issue 16 §1): the
proposal and DAO pages never ask the node.

- The clock is the block up to which the indexer has read the governor's events (its cursor),
  with that block's stored time and the pace of the stored blocks before it; "now" is
  `chain_clock` (the indexer's newest block, this process's last read, this server's clock).
- The state follows OpenZeppelin's `Governor.state` and `GovernorTimelockControl.state` on
  that clock: executed / canceled from the indexed ProposalExecuted / ProposalCanceled,
  pending and active from the snapshot and deadline of ProposalCreated, defeated or succeeded
  from the counted VoteCast weights (dao_votes) against the quorum, queued from
  ProposalQueued, canceled when the treasury cancelled the queued operation (its alert).
- Weights come from the votes projection (chain_vote_checkpoints, DelegateVotesChanged).
- What the indexer cannot see, the chamber's voting token and quorum(snapshot), is recorded
  on the proposal by the worker (`record_facts`, beat task dao.record_proposal_facts) as soon
  as it is fixed; until then (a few seconds) a page reads it from the node.

Pages may so lag the node by the indexer's pace and its confirmations; what changes
something (a vote, queueing, executing) still reads the node (ProposalService, not
`from_projection`), as the chain will check it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.chain import api as chain_api
from backend.chain.api import ChainUnavailable
from backend.dao.common import DEFAULT_BLOCK_SECONDS, PACE_BLOCKS, BlockClock, Chain
from backend.dao.models import PAYOUT_CANCELLED, DaoAlert, DaoProposal, DaoVote
from backend.regions.models import Town

if TYPE_CHECKING:
    from backend.dao.proposals import ProposalService

log = logging.getLogger(__name__)
GOVERNOR = "TownGovernor"
SUPPORTS = {0: "against", 1: "for", 2: "abstain"}


def chain_id_of(session: Session, p: DaoProposal) -> int:
    town = session.get(Town, p.town_id)
    assert town is not None  # noqa: S101 - a proposal's town row is never deleted
    return int(town.chain_id)


def indexed_clock(
    session: Session, chain: Chain, chain_id: int, governor: str
) -> BlockClock | None:
    """The governor's clock as the indexer has it: the block its events are indexed to, that
    block's time and the pace of blocks; None before the indexer has reached the governor."""
    head = chain_api.synced_block(session, chain_id, [governor])
    if head is None or head < 0:
        return None
    found = chain_api.indexed_head(session, chain_id, head, PACE_BLOCKS)
    if found.time is None:
        return None
    pace = DEFAULT_BLOCK_SECONDS
    if found.seconds_per_block is not None:
        # A chain that mines on demand (a test chain) may put many blocks in one second:
        # never less than one second per block.
        pace = max(1.0, found.seconds_per_block)
    seen = getattr(chain, "seen_chain_now", None)
    now = chain_api.chain_clock(session, chain_id, seen() if seen else None)
    return BlockClock(head, found.time, pace, max(now, found.time))


def tallies(session: Session, p: DaoProposal) -> dict[str, int]:
    """For / against / abstain: the weights of the indexed VoteCast events (proposalVotes)."""
    out = {"for": 0, "against": 0, "abstain": 0}
    rows = session.execute(
        select(DaoVote.support, func.coalesce(func.sum(DaoVote.weight), 0))
        .where(DaoVote.proposal_row_id == p.id, DaoVote.state == "counted")
        .group_by(DaoVote.support)
    )
    for support, weight in rows:
        if int(support) in SUPPORTS:
            out[SUPPORTS[int(support)]] = int(weight)
    return out


def payout_cancelled(session: Session, p: DaoProposal) -> bool:
    """Whether the treasury cancelled the proposal's queued operation (an indexed Cancelled)."""
    found = session.scalar(
        select(DaoAlert.id)
        .where(DaoAlert.proposal_row_id == p.id, DaoAlert.kind == PAYOUT_CANCELLED)
        .limit(1)
    )
    return found is not None


def proposal_state(
    session: Session, p: DaoProposal, head: int, votes: dict[str, int], quorum: Callable[[], int]
) -> str:
    """Governor.state (with GovernorTimelockControl's) at block `head`, from the projection;
    `quorum()` gives quorum(snapshot) and is only called once the vote has closed."""
    if p.executed_tx_hash:
        return "executed"
    if p.canceled:
        return "canceled"
    assert p.snapshot_block is not None and p.deadline_block is not None  # noqa: S101
    if p.snapshot_block >= head:
        return "pending"
    if p.deadline_block >= head:
        return "active"
    if quorum() > votes["for"] + votes["abstain"] or votes["for"] <= votes["against"]:
        return "defeated"
    if not p.queued_eta:
        return "succeeded"
    return "canceled" if payout_cancelled(session, p) else "queued"


def voting_token(svc: ProposalService, p: DaoProposal) -> str:
    """The chamber's voting token (governor.token(), fixed at deployment): recorded on the
    proposal by the worker; read from the node only until then."""
    if p.voting_token:
        return p.voting_token
    return str(svc.gov(p.governor_address, "token"))


def quorum_of(svc: ProposalService, p: DaoProposal) -> int:
    """quorum(snapshot), once the snapshot is past: recorded on the proposal by the worker;
    read from the node only until then."""
    if p.quorum is not None:
        return int(p.quorum)
    return int(svc.gov(p.governor_address, "quorum", p.snapshot_block))


def record_facts(session: Session, chain: Chain, limit: int = 100) -> int:
    """The worker's half of the projected view: record each proposal's voting token, and its
    quorum once the governor's indexed clock is past the snapshot (both fixed from then on).
    Commits; returns how many proposals it completed. A node that does not answer leaves the
    rest for the next run."""
    rows = session.scalars(
        select(DaoProposal)
        .where(
            (DaoProposal.voting_token.is_(None))
            | (DaoProposal.quorum.is_(None) & DaoProposal.snapshot_block.is_not(None))
        )
        .order_by(DaoProposal.id)
        .limit(limit)
    ).all()
    done = 0
    for p in rows:
        try:
            if p.voting_token is None:
                p.voting_token = str(
                    chain.read(p.governor_address, "token", artifact_name=GOVERNOR)
                )
            head = chain_api.synced_block(session, chain_id_of(session, p), [p.governor_address])
            snapshot = p.snapshot_block
            if p.quorum is None and snapshot is not None and head is not None and snapshot < head:
                p.quorum = Decimal(
                    int(chain.read(p.governor_address, "quorum", snapshot, artifact_name=GOVERNOR))
                )
                done += 1
        except ChainUnavailable as exc:
            log.warning("proposal facts: the node is not answering: %s", exc)
            break
        except Exception as exc:  # noqa: BLE001 - one proposal's failed read must not stop others
            log.warning("proposal %s facts: %s", p.id, exc)
    session.commit()
    return done
