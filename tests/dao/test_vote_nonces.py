"""A member's gasless votes on several proposals of one chamber: each relayed castVoteBySig
carries the voter's governor nonce, and a nonce that is not the chain's next one makes the
ballot revert, leaving the vote "could not be recorded" with no way to vote again. So every
ballot must be signed with the nonce the chain will expect when it arrives, whatever the
indexer has seen yet and however many of the member's votes are under way."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.dao.models import DaoProposal, DaoVote
from tests.anvil_pool import outbox_round
from tests.dao.conftest import SLUG, make_staff, settle, signup
from tests.dao.test_dao_api import open_proposal

BASE = f"/api/towns/{SLUG}/dao"


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _send_without_indexing(app: Flask, dao_chain: Any) -> None:
    """The relayer sends and the chain mines, but the indexer has not read the block yet (it
    waits for its confirmations)."""
    with app.app_context():
        outbox_round(outbox_service(), get_db().session, dao_chain.w3, mine=False)
        get_db().session.remove()


def _votes(app: Flask) -> dict[int, str]:
    with app.app_context():
        s = get_db().session
        out = {v.proposal_row_id: v.state for v in s.scalars(sa.select(DaoVote))}
        s.commit()
        return out


def _has_voted(app: Flask, dao_chain: Any, pid: int, voter: str) -> bool:
    with app.app_context():
        s = get_db().session
        proposal_id = s.get(DaoProposal, pid).proposal_id_int
        s.commit()
    return bool(dao_chain.card_chamber.functions.hasVoted(proposal_id, voter).call())


def test_a_vote_right_after_another_mined_but_not_yet_indexed_is_counted(
    manual_outbox, town, staff, dao_chain
):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 1)
    first = open_proposal(app, staff, dao_chain)
    second = open_proposal(app, staff, dao_chain)

    assert member.post(f"{BASE}/proposals/{first}/votes", {"support": "for"}).status_code == 202
    _send_without_indexing(app, dao_chain)
    assert _has_voted(app, dao_chain, first, addr)  # on chain, not yet in the projection
    assert _votes(app) == {first: "submitted"}

    resp = member.post(f"{BASE}/proposals/{second}/votes", {"support": "against"})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    settle(app, dao_chain, rounds=3)

    assert _has_voted(app, dao_chain, second, addr)
    assert _votes(app) == {first: "counted", second: "counted"}
    results = member.get(f"{BASE}/proposals/{second}/results").get_json()
    assert results["votes"] == {"for": 0, "against": 1, "abstain": 0}


def test_votes_sent_at_once_on_several_proposals_are_all_counted(
    manual_outbox, town, staff, dao_chain
):
    """Three tabs: the member votes on three proposals of the card chamber at the same moment."""
    from backend.accounts.models import User
    from backend.dao.proposals import ProposalService
    from backend.regions.models import Town
    from tests.concurrency import n_at_once

    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, uid, addr = signup(app)
    dao_chain.mint_cards(addr, 1)
    pids = [open_proposal(app, staff, dao_chain) for _ in range(3)]

    def vote(i: int) -> int:
        s = get_db().session
        svc = ProposalService.current()
        t = s.get(Town, town.id)
        return svc.cast_vote(s.get(User, uid), t, svc.get_proposal(t, pids[i]), "for").id

    answers = n_at_once(app, 3, vote, request=True)
    assert all(isinstance(a, int) for a in answers), answers
    settle(app, dao_chain, rounds=3)

    assert all(_has_voted(app, dao_chain, pid, addr) for pid in pids)
    assert _votes(app) == dict.fromkeys(pids, "counted")
