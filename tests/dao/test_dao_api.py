"""The DAO JSON API against real anvil + PostgreSQL: propose → eligibility → gasless vote →
results → queue → execute → payout; and every bad request refused with nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from backend.dao.models import DaoVote
from tests.accounts.conftest import assert_error
from tests.dao.conftest import SLUG, counts, make_staff, new_api, settle, signup

BASE = f"/api/towns/{SLUG}/dao"
RECIPIENT = "0x00000000000000000000000000000000000000E1"
EN = {"Accept-Language": "en"}


def proposal_body(**over: Any) -> dict[str, Any]:
    body = {
        "chamber": "card",
        "token": "yen",
        "recipient": RECIPIENT,
        "amount": 25_000,
        "title_ja": "収穫祭の予算",
        "title_en": "Harvest festival budget",
        "body_en": "Stage and sound.",
        "idempotency_key": f"test-{uuid.uuid4().hex}",
    }
    body.update(over)
    return body


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def open_proposal(app: Flask, staff: Any, dao_chain: Any, **over: Any) -> int:
    resp = staff.post(f"{BASE}/proposals", proposal_body(**over))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    pid = resp.get_json()["proposal"]["id"]
    settle(app, dao_chain)
    dao_chain.mine(2)  # past the 1-block voting delay
    settle(app, dao_chain)  # pages and reads follow the indexer (issue 16 §1)
    return pid


def test_full_journey_through_the_api(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    member, _uid, addr = signup(app)
    dao_chain.mint_cards(addr, 2)
    pid = open_proposal(app, staff, dao_chain)

    listed = new_api(app).get(f"{BASE}/proposals").get_json()["proposals"]
    assert [p["id"] for p in listed] == [pid]

    e = member.client.get(f"{BASE}/proposals/{pid}/eligibility", headers=EN).get_json()
    assert e["can_vote"] and e["weight"] == 2 and e["reason"] == "eligible"
    assert "you hold 2 ambassador cards" in e["message"]

    resp = member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for"})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    settle(app, dao_chain)
    r = new_api(app).get(f"{BASE}/proposals/{pid}/results").get_json()
    assert r["votes"] == {"for": 2, "against": 0, "abstain": 0}
    assert r["voters_counted"] == 1 and r["state"] == "active"
    with app.app_context():
        from backend.core.db import get_db

        v = get_db().session.query(DaoVote).one()
        assert (v.state, int(v.weight), v.voter) == ("counted", 2, addr)
        assert v.tx_hash

    dao_chain.mine(301)
    settle(app, dao_chain)  # reads follow the indexer
    assert member.get(f"{BASE}/proposals/{pid}/results").get_json()["state"] == "succeeded"
    assert staff.post(f"{BASE}/proposals/{pid}/queue").status_code == 202
    settle(app, dao_chain)
    assert staff.get(f"{BASE}/proposals/{pid}/results").get_json()["state"] == "queued"
    # Too early: the timelock's 60 s have not passed.
    assert_error(staff.post(f"{BASE}/proposals/{pid}/execute"), 409, "wrong_state")
    dao_chain.increase_time(61)
    assert staff.post(f"{BASE}/proposals/{pid}/execute").status_code == 202
    settle(app, dao_chain)
    r = staff.get(f"{BASE}/proposals/{pid}/results").get_json()
    assert r["state"] == "executed"
    assert len(r["payouts"]) == 1
    payout = r["payouts"][0]
    assert (payout["to"].lower(), payout["amount"]) == (RECIPIENT.lower(), "25000")
    assert payout["tx_hash"] == r["executed_tx_hash"]
    assert dao_chain.yen_balance(RECIPIENT) == 25_000


def test_vote_refusals_change_nothing(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    holder, _, holder_addr = signup(app)
    dao_chain.mint_cards(holder_addr, 1)
    pid = open_proposal(app, staff, dao_chain)
    nobody, _, _ = signup(app)
    gone, _, _ = signup(app)
    late, _, late_addr = signup(app)
    dao_chain.mint_cards(late_addr, 1)  # after the snapshot
    settle(app, dao_chain)  # reads follow the indexer

    before = counts(app)
    # invalid support value
    for bad in (3, "maybe", None, True, -1, "1.0"):
        assert_error(
            holder.post(f"{BASE}/proposals/{pid}/votes", {"support": bad}), 400, "invalid_support"
        )
    # not a JSON object
    assert_error(holder.post(f"{BASE}/proposals/{pid}/votes", ["for"]), 400, "invalid_input")
    # no card at the snapshot
    err = assert_error(nobody.post(f"{BASE}/proposals/{pid}/votes", {"support": 1}), 403)
    assert err["code"] == "not_eligible" and err["details"]["reason"] == "no_card"
    err = assert_error(late.post(f"{BASE}/proposals/{pid}/votes", {"support": 1}), 403)
    assert err["details"]["reason"] == "card_after_snapshot"
    e = late.client.get(f"{BASE}/proposals/{pid}/eligibility", headers=EN).get_json()
    assert "after the vote was announced" in e["message"]
    # not signed in (or the session expired)
    assert_error(new_api(app).post(f"{BASE}/proposals/{pid}/votes", {"support": 1}), 401)
    # unknown proposal / another town's proposal
    assert_error(holder.post(f"{BASE}/proposals/999999/votes", {"support": 1}), 404)
    assert_error(
        holder.post(f"/api/towns/elsewhere/dao/proposals/{pid}/votes", {"support": 1}), 404
    )
    assert counts(app) == before

    # the first vote goes; the second is refused before anything is signed
    assert holder.post(f"{BASE}/proposals/{pid}/votes", {"support": 0}).status_code == 202
    after_one = counts(app)
    err = assert_error(holder.post(f"{BASE}/proposals/{pid}/votes", {"support": 1}), 409)
    assert err["code"] == "already_voted"
    assert counts(app) == after_one
    settle(app, dao_chain)
    err = assert_error(holder.post(f"{BASE}/proposals/{pid}/votes", {"support": 1}), 409)
    assert err["code"] == "already_voted"
    assert counts(app) == after_one

    # a session that has ended (logged out): refused with a clear message
    assert gone.post("/api/auth/logout").status_code == 200
    gone.refresh_token()
    err = assert_error(
        gone.client.post(
            f"{BASE}/proposals/{pid}/votes",
            json={"support": 1},
            headers={"X-CSRFToken": gone.token, **EN},
        ),
        401,
        "authentication_required",
    )
    assert err["message"] == "Please sign in."
    assert counts(app) == after_one

    # voting closed
    dao_chain.mine(301)
    settle(app, dao_chain)  # reads follow the indexer
    e = holder.get(f"{BASE}/proposals/{pid}/eligibility").get_json()
    assert e["reason"] == "already_voted"
    e = nobody.get(f"{BASE}/proposals/{pid}/eligibility").get_json()
    assert e["reason"] == "ended" and not e["can_vote"]
    assert_error(nobody.post(f"{BASE}/proposals/{pid}/votes", {"support": 1}), 409, "voting_closed")
    assert counts(app) == after_one


def test_staff_actions_refused_for_members_and_bad_input(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(10_000)
    member, _, _ = signup(app)
    before = counts(app)
    assert_error(member.post(f"{BASE}/proposals", proposal_body()), 403, "forbidden")
    assert_error(new_api(app).post(f"{BASE}/proposals", proposal_body()), 401)
    bad_bodies = [
        {"recipient": "0x1234"},
        {"recipient": "0x" + "00" * 20},
        {"amount": 0},
        {"amount": -5},
        {"amount": "12.5"},
        {"amount": 10**40},
        {"token": "bitcoin"},
        {"chamber": "senate"},
        {"title_ja": "", "title_en": ""},
        {"title_en": "x" * 201},
        {"idempotency_key": "short"},
        {"idempotency_key": None},
    ]
    for over in bad_bodies:
        resp = staff.post(f"{BASE}/proposals", proposal_body(**over))
        assert_error(resp, 400, "invalid_input")
    err = assert_error(
        staff.post(f"{BASE}/proposals", proposal_body(amount=10_001)), 400, "insufficient_treasury"
    )
    assert err["details"] == {"balance": 10_000, "amount": 10_001}
    assert counts(app) == before

    pid = open_proposal(app, staff, dao_chain, amount=5_000)
    after = counts(app)
    for action in ("queue", "execute"):
        assert_error(member.post(f"{BASE}/proposals/{pid}/{action}"), 403, "forbidden")
        assert_error(new_api(app).post(f"{BASE}/proposals/{pid}/{action}"), 401)
        # still active: nothing to queue or execute
        assert_error(staff.post(f"{BASE}/proposals/{pid}/{action}"), 409, "wrong_state")
    assert counts(app) == after


def test_create_is_idempotent(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(10_000)
    body = proposal_body(amount=100)
    first = staff.post(f"{BASE}/proposals", body)
    again = staff.post(f"{BASE}/proposals", body)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["proposal"]["id"] == again.get_json()["proposal"]["id"]
    c = counts(app)
    assert (c["dao_proposals"], c["outbox_txs"]) == (1, 1)
