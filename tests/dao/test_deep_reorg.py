"""Votes under a reorg deeper than the confirmations (issue 10 §4): a counted vote and a vote
still in the pool are taken off the chain with evm_revert; the relayer sends both again, the
results equal the governor's own tally, no nonce gap remains and the next vote is counted."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from eth_account import Account
from flask import Flask

from backend.chain.indexer_tasks import index_blocks
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.dao.models import DaoProposal, DaoVote
from tests.chain._reorg_helpers import drive, no_automine, nonce_gap, revert, snapshot
from tests.dao.conftest import SLUG, make_staff, settle, signup
from tests.dao.test_dao_api import open_proposal

BASE = f"/api/towns/{SLUG}/dao"


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def _index(app: Flask) -> None:
    with app.app_context():
        index_blocks(max_seconds=20)
        get_db().session.remove()


def _votes(app: Flask) -> dict[str, str]:
    with app.app_context():
        s = get_db().session
        out = {v.voter: v.state for v in s.scalars(sa.select(DaoVote))}
        s.commit()
        return out


def _chain_tally(app: Flask, dao_chain: Any, pid: int) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        p = s.get(DaoProposal, pid)
        proposal_id = p.proposal_id_int
        s.commit()
    against, for_, abstain = dao_chain.card_chamber.functions.proposalVotes(proposal_id).call()
    return int(for_), int(against), int(abstain)


def _results(api: Any, pid: int) -> tuple[int, int, int]:
    v = api.get(f"{BASE}/proposals/{pid}/results").get_json()["votes"]
    return int(v["for"]), int(v["against"]), int(v["abstain"])


@pytest.mark.parametrize("pad", [0, 6])
def test_votes_are_counted_again_after_a_deep_reorg(manual_outbox, town, staff, dao_chain, pad):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    first, _u1, a1 = signup(app)
    second, _u2, a2 = signup(app)
    third, _u3, a3 = signup(app)
    for addr in (a1, a2, a3):
        dao_chain.mint_cards(addr, 1)
    pid = open_proposal(app, staff, dao_chain)
    w3 = dao_chain.w3
    snap = snapshot(w3)
    start = w3.eth.block_number
    assert first.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    settle(app, dao_chain)
    assert _votes(app) == {a1: "counted"}
    if pad:
        dao_chain.mine(pad)
    with no_automine(w3):
        resp = second.post(f"{BASE}/proposals/{pid}/votes", {"support": "against"})
        assert resp.status_code == 202
        with app.app_context():
            svc, session = outbox_service(), get_db().session
            for sender in svc.senders_with_work(session):
                svc.send_pending(session, sender)
        depth = w3.eth.block_number - start
        revert(w3, snap)
    assert 1 <= depth <= 10
    _index(app)
    assert _votes(app) == {a1: "submitted", a2: "submitted"}  # not counted: off the chain
    assert _results(staff, pid) == (0, 0, 0)

    def consistent() -> bool:
        return _votes(app) == {a1: "counted", a2: "counted"} and _results(
            staff, pid
        ) == _chain_tally(app, dao_chain, pid)

    assert drive(app, w3, consistent, also=lambda: _index(app))
    assert _chain_tally(app, dao_chain, pid) == (1, 1, 0)
    relayer = Account.from_key(app.extensions["settings"].relayer_private_keys).address
    assert nonce_gap(app, w3, relayer) == 0
    assert third.post(f"{BASE}/proposals/{pid}/votes", {"support": "abstain"}).status_code == 202
    assert drive(app, w3, lambda: _votes(app).get(a3) == "counted", also=lambda: _index(app))
    assert _results(staff, pid) == _chain_tally(app, dao_chain, pid) == (1, 1, 1)


def test_a_vote_whose_nonce_was_taken_is_shown_as_not_counted(
    manual_outbox, town, staff, dao_chain
):
    from backend.chain.outbox_models import OutboxTx
    from backend.dao.tasks import mark_lost_votes
    from tests.chain._reorg_helpers import rpc

    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 2)
    pid = open_proposal(app, staff, dao_chain)
    w3 = dao_chain.w3
    snap = snapshot(w3)
    assert member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    settle(app, dao_chain)
    assert _votes(app) == {addr: "counted"} and _results(staff, pid) == (2, 0, 0)
    with app.app_context():
        s = get_db().session
        nonce = s.get(OutboxTx, s.scalar(sa.select(DaoVote.outbox_tx_id))).nonce
        s.commit()
    revert(w3, snap)
    relayer_key = app.extensions["settings"].relayer_private_keys
    relayer = Account.from_key(relayer_key).address
    foreign = Account.sign_transaction(
        {"to": relayer, "value": 0, "gas": 21_000, "maxFeePerGas": 10**11,
         "maxPriorityFeePerGas": 10**9, "nonce": nonce, "chainId": w3.eth.chain_id},
        relayer_key,
    )  # fmt: skip
    rpc(w3, "eth_sendRawTransaction", ["0x" + foreign.raw_transaction.hex()])
    rpc(w3, "anvil_mine", ["0x1"])

    def not_counted() -> bool:
        with app.app_context():
            mark_lost_votes()
        return _votes(app) == {addr: "failed"}

    assert drive(app, w3, not_counted, also=lambda: _index(app))
    r = staff.get(f"{BASE}/proposals/{pid}/results").get_json()
    assert (r["voters_counted"], r["votes_processing"]) == (0, 0)
    assert _results(staff, pid) == _chain_tally(app, dao_chain, pid) == (0, 0, 0)
    assert nonce_gap(app, w3, relayer) == 0
