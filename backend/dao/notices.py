"""What the DAO tells the notifications domain: a poll or proposal the chain has just opened in
a town, with its titles and whose holders may vote on it (backend/notifications/handlers.py
asks, in the indexer's transaction, after the DAO's own handlers recorded the event).

Proposals made outside the platform (origin external) are not announced: anyone able to propose
on chain could otherwise mail every member of a town; staff see them as alerts (external.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.dao.models import PLATFORM, POLL_TOKEN_KEYS, DaoPoll, DaoProposal
from backend.regions.models import Town

POLL, PROPOSAL = "poll", "proposal"


@dataclass(frozen=True)
class Opened:
    what: str  # POLL | PROPOSAL
    row_id: int  # the row its page shows (a proposal put to both chambers: each chamber's own)
    town_slug: str
    town_ja: str
    town_en: str
    title_ja: str
    title_en: str
    voters_key: str  # the watched contract whose token holders may vote on it


def _voters_key(town: Town, chamber: str) -> str:
    return f"towns.{town.slug}.{POLL_TOKEN_KEYS[chamber]}"


def opened_poll(session: Session, poll_address: str, poll_id: int) -> Opened | None:
    """The platform's poll `poll_id` of the TownPoll at `poll_address`, once indexed."""
    row = session.execute(
        select(DaoPoll, Town)
        .join(Town, Town.id == DaoPoll.town_id)
        .where(DaoPoll.poll_address == poll_address, DaoPoll.poll_id == poll_id)
    ).first()
    if row is None:
        return None
    poll, town = row
    return Opened(
        POLL,
        poll.id,
        town.slug,
        town.name_ja,
        town.name_en,
        poll.title_ja,
        poll.title_en,
        _voters_key(town, poll.chamber),
    )


def opened_proposal(session: Session, governor_address: str, proposal_id: int) -> Opened | None:
    """The platform's proposal `proposal_id` of the chamber at `governor_address`."""
    row = session.execute(
        select(DaoProposal, Town)
        .join(Town, Town.id == DaoProposal.town_id)
        .where(
            DaoProposal.governor_address == governor_address,
            DaoProposal.proposal_id == str(proposal_id),
        )
    ).first()
    if row is None or row[0].origin != PLATFORM or row[0].chamber not in POLL_TOKEN_KEYS:
        return None
    p, town = row
    return Opened(
        PROPOSAL,
        p.id,
        town.slug,
        town.name_ja,
        town.name_en,
        p.title_ja,
        p.title_en,
        _voters_key(town, p.chamber),
    )
