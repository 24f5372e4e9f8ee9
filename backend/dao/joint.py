"""Proposals put to both chambers (issue 15 §3, ADR 0021): passed only when both pass.

Staff put a payout to "both" chambers: the card chamber's row carries the payout; the resident
chamber's row (`joint_of` = the card row) carries the same text and an action that pays
nothing. The joint outcome is "passed" only when both governors say succeeded (or later:
queued, executed), "defeated" as soon as either chamber defeated, let expire or cancelled it,
and "open" otherwise. The treasury steps (treasury.py) queue and execute the payout only from
the card chamber's row and only once the joint outcome is "passed".

On chain each chamber is still a proposer of the treasury timelock on its own, and anyone may
queue a succeeded proposal: the rule is the platform's. The town's guardian (CANCELLER_ROLE)
can cancel a payout queued around it during the timelock delay; making the rule the chain's
(a joint-approval contract as the only proposer of the payout) is the next step (ADR 0021).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.core.errors import N_
from backend.dao.errors import WrongState
from backend.dao.models import CARD, DaoProposal

if TYPE_CHECKING:
    from backend.dao.proposals import ProposalService

PASSED = ("succeeded", "queued", "executed")
FAILED = ("defeated", "expired", "canceled", "failed")


def halves(session: Session, p: DaoProposal) -> tuple[DaoProposal, DaoProposal] | None:
    """(card row, resident row) of a proposal put to both chambers; None for one chamber."""
    if p.joint_of is not None:
        card = session.get(DaoProposal, p.joint_of)
        return (card, p) if card is not None else None
    resident = session.scalar(select(DaoProposal).where(DaoProposal.joint_of == p.id))
    return (p, resident) if resident is not None else None


def outcome(card_state: str, resident_state: str) -> str:
    """passed | defeated | open, from the two chambers' states."""
    if card_state in FAILED or resident_state in FAILED:
        return "defeated"
    if card_state in PASSED and resident_state in PASSED:
        return "passed"
    return "open"


def joint_view(svc: ProposalService, p: DaoProposal) -> dict[str, Any] | None:
    """Both chambers' states and the joint outcome, for a proposal put to both."""
    pair = halves(svc.session, p)
    if pair is None:
        return None
    card, resident = pair
    card_state = svc.chain_view(card).state
    resident_state = svc.chain_view(resident).state
    return {
        "card": card.id,
        "resident": resident.id,
        "card_state": card_state,
        "resident_state": resident_state,
        "outcome": outcome(card_state, resident_state),
    }


def require_joint_passed(svc: ProposalService, p: DaoProposal) -> None:
    """WrongState unless `p` may be queued or executed: a one-chamber proposal always may; of a
    joint proposal only the card row, and only once both chambers passed it."""
    pair = halves(svc.session, p)
    if pair is None:
        return
    card, resident = pair
    if p.chamber != CARD:
        raise WrongState(
            N_(
                "This is the resident chamber's approval of a proposal put to both chambers; "
                "the payout is queued from the card chamber's proposal."
            ),
            state="approval",
        )
    state = svc.chain_view(resident).state
    if state not in PASSED:
        raise WrongState(
            N_(
                "This proposal needs both chambers: the resident chamber has not passed it "
                "(it is %(state)s)."
            ),
            state=state,
        )
