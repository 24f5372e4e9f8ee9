"""Pages read a proposal from the projection (issue 16 §1, backend/dao/projected.py): at every
step of a proposal's life (active, voted, succeeded, queued, executed; another one defeated)
the view a page gets without asking the node equals what the governor answers, once the worker
has indexed the chain and recorded the proposal's facts (voting token, quorum). Eligibility
too: weights now and at the snapshot from the votes projection, a vote already cast."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.core.db import get_db
from backend.dao.models import DaoProposal
from backend.dao.proposals import ProposalService
from backend.dao.tasks import record_proposal_facts
from tests.dao.conftest import settle, signup
from tests.dao.test_dao_api import BASE, open_proposal, proposal_body

FIELDS = ("state", "snapshot", "deadline", "votes", "quorum", "eta", "head_block", "can_execute")


def _worker(app: Flask, dao_chain: Any) -> None:
    """What the beat does between two page views: index, then record the proposals' facts."""
    settle(app, dao_chain)
    with app.app_context():
        record_proposal_facts()


def _views(app: Flask, pid: int, email: str | None = None) -> tuple[dict, dict, dict, dict]:
    """(live view, projected view, live eligibility, projected eligibility) of `email`."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        s = get_db().session
        p = s.get(DaoProposal, pid)
        user = s.scalar(sa.select(User).where(User.email == email)) if email else None
        live, page = ProposalService.current(), ProposalService.for_pages()
        lv, pv = live.chain_view(p), page.chain_view(p)
        le, pe = live.eligibility(user, p, lv), page.eligibility(user, p, pv)
        pick = lambda v: {f: getattr(v, f) for f in FIELDS}  # noqa: E731
        return pick(lv), pick(pv), le.as_dict(), pe.as_dict()


def _same(app: Flask, pid: int, email: str | None = None) -> dict:
    live, page, live_e, page_e = _views(app, pid, email)
    assert page == live
    assert page_e == live_e
    return page


def _email(app: Flask, uid: int) -> str:
    with app.app_context():
        return str(get_db().session.get(User, uid).email)


def test_the_projected_view_follows_the_governor_through_a_proposals_life(
    manual_outbox, town, dao_chain
):
    app = manual_outbox
    staff, staff_id, _ = signup(app)
    from tests.dao.conftest import make_staff

    make_staff(app, town, staff_id)
    dao_chain.fund_treasury(100_000)
    member, member_id, addr = signup(app)
    outsider_email = _email(app, signup(app)[1])
    dao_chain.mint_cards(addr, 2)
    pid = open_proposal(app, staff, dao_chain)
    _worker(app, dao_chain)
    member_email = _email(app, member_id)

    view = _same(app, pid, member_email)
    assert view["state"] == "active" and view["quorum"] == 2
    assert _same(app, pid, outsider_email)["state"] == "active"

    assert member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    _worker(app, dao_chain)
    view = _same(app, pid, member_email)
    assert view["votes"] == {"for": 2, "against": 0, "abstain": 0}

    dao_chain.mine(301)
    _worker(app, dao_chain)
    assert _same(app, pid, member_email)["state"] == "succeeded"

    assert staff.post(f"{BASE}/proposals/{pid}/queue").status_code == 202
    _worker(app, dao_chain)
    view = _same(app, pid)
    assert view["state"] == "queued" and view["eta"] and not view["can_execute"]

    dao_chain.increase_time(61)
    _worker(app, dao_chain)
    assert _same(app, pid)["can_execute"]
    assert staff.post(f"{BASE}/proposals/{pid}/execute").status_code == 202
    _worker(app, dao_chain)
    assert _same(app, pid, member_email)["state"] == "executed"


def test_a_proposal_without_enough_votes_is_defeated_in_both_views(manual_outbox, town, dao_chain):
    app = manual_outbox
    staff, staff_id, _ = signup(app)
    from tests.dao.conftest import make_staff

    make_staff(app, town, staff_id)
    dao_chain.fund_treasury(100_000)
    member, member_id, addr = signup(app)
    dao_chain.mint_cards(addr, 1)  # one vote: under the quorum floor of 2
    resp = staff.post(f"{BASE}/proposals", proposal_body())
    pid = resp.get_json()["proposal"]["id"]
    # Before the worker has indexed it: being recorded, in both views.
    assert _same(app, pid)["state"] == "submitting"
    _worker(app, dao_chain)
    assert _same(app, pid)["state"] == "pending"
    dao_chain.mine(2)
    _worker(app, dao_chain)
    assert member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    _worker(app, dao_chain)
    dao_chain.mine(301)
    _worker(app, dao_chain)
    view = _same(app, pid, _email(app, member_id))
    assert view["state"] == "defeated" and view["votes"]["for"] == 1


def test_a_payout_executed_in_the_treasury_itself_shows_as_paid_out(manual_outbox, town, dao_chain):
    """Anyone may execute a ready treasury operation (EXECUTOR_ROLE is open), also without the
    governor: the governor then says "executed" (GovernorTimelockControl reads the timelock),
    and so must the page, with the payout it made."""
    from tests.dao.conftest import SLUG, make_staff
    from tests.dao.test_dao_api import RECIPIENT

    app = manual_outbox
    staff, staff_id, _ = signup(app)
    make_staff(app, town, staff_id)
    dao_chain.fund_treasury(100_000)
    member, member_id, addr = signup(app)
    dao_chain.mint_cards(addr, 2)
    pid = open_proposal(app, staff, dao_chain)
    assert member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"}).status_code == 202
    _worker(app, dao_chain)
    dao_chain.mine(301)
    _worker(app, dao_chain)
    assert staff.post(f"{BASE}/proposals/{pid}/queue").status_code == 202
    _worker(app, dao_chain)
    dao_chain.increase_time(61)

    with app.app_context():
        p = get_db().session.get(DaoProposal, pid)
        targets, values, calldatas = p.actions()
        gov, description = p.governor_address, p.description
    from backend.chain.governance import timelock_salt

    treasury = dao_chain.contract(f"towns.{SLUG}.TownTreasury", "TownTreasury")
    dao_chain.send(
        treasury.functions.executeBatch(
            targets,
            values,
            [bytes.fromhex(c.removeprefix("0x")) for c in calldatas],
            b"\x00" * 32,
            timelock_salt(gov, description),
        )
    )
    assert dao_chain.yen_balance(RECIPIENT) == 25_000
    _worker(app, dao_chain)

    view = _same(app, pid, _email(app, member_id))
    assert view["state"] == "executed"
    r = staff.get(f"{BASE}/proposals/{pid}/results").get_json()
    assert r["state"] == "executed" and r["executed_tx_hash"]
    assert [(x["to"].lower(), x["amount"]) for x in r["payouts"]] == [(RECIPIENT.lower(), "25000")]


def test_a_vote_cast_with_params_from_an_own_wallet_is_counted_on_the_page(
    manual_outbox, town, dao_chain, w3
):
    """A holder votes from their own wallet with castVoteWithReasonAndParams (any Governor
    client may): the governor counts it and emits VoteCastWithParams, not VoteCast. The page's
    tally and state must still be the governor's."""
    from tests.dao.conftest import make_staff
    from tests.dao.test_external_proposals import Tourist

    app = manual_outbox
    staff, staff_id, _ = signup(app)
    make_staff(app, town, staff_id)
    dao_chain.fund_treasury(100_000)
    holder = Tourist(w3, dao_chain)
    dao_chain.mint_cards(holder.address, 2)
    pid = open_proposal(app, staff, dao_chain)
    with app.app_context():
        proposal_id = get_db().session.get(DaoProposal, pid).proposal_id_int
    gov = dao_chain.card_chamber
    holder.send(gov.functions.castVoteWithReasonAndParams(proposal_id, 1, "from Tally", b"\x01"))
    _worker(app, dao_chain)

    view = _same(app, pid)
    assert view["votes"] == {"for": 2, "against": 0, "abstain": 0}
    dao_chain.mine(301)
    _worker(app, dao_chain)
    assert _same(app, pid)["state"] == "succeeded"
