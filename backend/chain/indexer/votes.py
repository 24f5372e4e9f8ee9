"""The votes projection: each ERC-5805 delegate's votes per block, from DelegateVotesChanged.

Chain-level like the token projection (balances, owners): any watched contract that emits
DelegateVotesChanged (a FanCollection with votes, a ResidentPass) is projected, so governance
pages read a voter's weight now and at a proposal's snapshot from SQL instead of calling
`getVotes` / `getPastVotes` on the node (issue 16 §1).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import delete
from sqlalchemy.orm import Session

from backend.chain.indexer.events import _HANDLERS, ChainEvent, Handler
from backend.chain.indexer.storage import _upsert
from backend.chain.indexer_models import VoteCheckpoint


def apply_vote_changes(s: Session, events: Sequence[ChainEvent]) -> None:
    """One checkpoint per (token, delegate, block): the block's last `newVotes` (chain order)."""
    rows: dict[tuple[str, str, int], dict[str, object]] = {}
    for ev in events:
        key = (ev.contract_address, str(ev.args["delegate"]), ev.block_number)
        rows[key] = {
            "chain_id": ev.chain_id,
            "contract_address": key[0],
            "account": key[1],
            "block_number": key[2],
            "votes": Decimal(int(ev.args["newVotes"])),
        }
    _upsert(
        s,
        VoteCheckpoint,
        list(rows.values()),
        ["chain_id", "contract_address", "account", "block_number"],
        ["votes"],
    )


def revert_vote_changes(s: Session, events: Sequence[ChainEvent]) -> None:
    """A reorg removes whole blocks: their checkpoints go, the ones below stay."""
    keys = {
        (ev.chain_id, ev.contract_address, str(ev.args["delegate"]), ev.block_number)
        for ev in events
    }
    for chain_id, contract, account, block in sorted(keys):
        s.execute(
            delete(VoteCheckpoint).where(
                VoteCheckpoint.chain_id == chain_id,
                VoteCheckpoint.contract_address == contract,
                VoteCheckpoint.account == account,
                VoteCheckpoint.block_number == block,
            )
        )


VOTES_PROJECTION = Handler("DelegateVotesChanged", apply_vote_changes, revert_vote_changes)
_HANDLERS.append(VOTES_PROJECTION)
