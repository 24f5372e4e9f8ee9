"""Own-wallet (SIWE) votes on proposals, and multi-option polls (TownPoll), through the JSON API
against real anvil + PostgreSQL: ballots signed by eth_account here stand in for the browser
wallet; every bad request is refused with nothing changed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from eth_account import Account
from flask import Flask

from backend.core.db import get_db
from backend.dao.models import DaoPollVote, DaoVote
from tests.accounts.conftest import assert_error
from tests.dao.conftest import (
    SLUG,
    make_staff,
    new_api,
    poll_counts,
    settle,
    sign_typed,
    signup,
    wallet_signin,
)
from tests.dao.test_dao_api import open_proposal

BASE = f"/api/towns/{SLUG}/dao"
EN = {"Accept-Language": "en"}
OPTIONS = [
    {"ja": "青いラベル", "en": "Blue label"},
    {"ja": "赤いラベル", "en": "Red label"},
    {"ja": "緑のラベル", "en": "Green label"},
]


@pytest.fixture
def staff(manual_outbox: Flask, town: Any) -> Any:
    api, uid, _addr = signup(manual_outbox)
    make_staff(manual_outbox, town, uid)
    return api


def poll_body(**over: Any) -> dict[str, Any]:
    body = {
        "chamber": "card",
        "title_ja": "特産品ラベルのデザイン",
        "title_en": "Label design for the local produce",
        "options": OPTIONS,
        "duration_blocks": 50,
        "idempotency_key": f"poll-{uuid.uuid4().hex}",
    }
    body.update(over)
    return body


def open_poll(app: Flask, staff: Any, dao_chain: Any, **over: Any) -> int:
    resp = staff.post(f"{BASE}/polls", poll_body(**over))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    poll_id = resp.get_json()["poll"]["id"]
    settle(app, dao_chain)
    return poll_id


# ---------------------------------------------------------------------------- own wallet


def test_wallet_user_votes_on_a_proposal_with_a_signed_ballot(
    manual_outbox, town, staff, dao_chain
):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    wallet = Account.create()
    dao_chain.mint_cards(wallet.address, 3)
    member = wallet_signin(app, wallet)
    pid = open_proposal(app, staff, dao_chain)

    e = member.client.get(f"{BASE}/proposals/{pid}/eligibility", headers=EN).get_json()
    assert (e["can_vote"], e["weight"], e["wallet"]) == (True, 3, "external")
    assert e["address"] == wallet.address

    prepared = member.post(f"{BASE}/proposals/{pid}/ballot", {"support": "for"})
    assert prepared.status_code == 200, prepared.get_data(as_text=True)
    body = prepared.get_json()
    typed = body["typed_data"]
    assert typed["primaryType"] == "Ballot" and body["voter"] == wallet.address
    assert typed["domain"]["verifyingContract"] == dao_chain.card_chamber.address
    assert typed["message"] == {
        "proposalId": typed["message"]["proposalId"],
        "support": 1,
        "voter": wallet.address,
        "nonce": "0",
    }
    before = poll_counts(app)
    # A signature by someone else, or over another choice, is refused with nothing changed.
    other = sign_typed(Account.create(), typed)
    assert_error(
        member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for", "signature": other}),
        400,
        "invalid_signature",
    )
    mine = sign_typed(wallet, typed)
    assert_error(
        member.post(f"{BASE}/proposals/{pid}/votes", {"support": "against", "signature": mine}),
        400,
        "invalid_signature",
    )
    for junk in (None, "0x1234", 42, "0x" + "zz" * 65):
        assert_error(
            member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for", "signature": junk}),
            400,
            "invalid_signature",
        )
    assert poll_counts(app) == before

    resp = member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for", "signature": mine})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    after = poll_counts(app)
    assert_error(
        member.post(f"{BASE}/proposals/{pid}/votes", {"support": "for", "signature": mine}),
        409,
        "already_voted",
    )
    assert_error(member.post(f"{BASE}/proposals/{pid}/ballot", {"support": "for"}), 409)
    assert poll_counts(app) == after

    settle(app, dao_chain)
    r = new_api(app).get(f"{BASE}/proposals/{pid}/results").get_json()
    assert r["votes"] == {"for": 3, "against": 0, "abstain": 0}
    with app.app_context():
        v = get_db().session.query(DaoVote).one()
        assert (v.state, int(v.weight), v.voter) == ("counted", 3, wallet.address)
    assert dao_chain.card_chamber.functions.hasVoted(int(r_pid(app)), wallet.address).call()


def r_pid(app: Flask) -> str:
    from backend.dao.models import DaoProposal

    with app.app_context():
        return get_db().session.query(DaoProposal).one().proposal_id


def test_wallet_user_without_weight_or_late_is_refused(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    poor = Account.create()
    api = wallet_signin(app, poor)
    holder, _, holder_addr = signup(app)
    dao_chain.mint_cards(holder_addr, 1)
    pid = open_proposal(app, staff, dao_chain)
    before = poll_counts(app)
    err = assert_error(api.post(f"{BASE}/proposals/{pid}/ballot", {"support": 1}), 403)
    assert err["details"]["reason"] == "no_card"
    # a built-in account needs no ballot from the browser
    assert_error(holder.post(f"{BASE}/proposals/{pid}/ballot", {"support": 1}), 400)
    assert_error(api.post(f"{BASE}/proposals/{pid}/ballot", {"support": 7}), 400)
    dao_chain.mine(301)
    assert_error(api.post(f"{BASE}/proposals/{pid}/ballot", {"support": 1}), 409, "voting_closed")
    assert poll_counts(app) == before


# ---------------------------------------------------------------------------- polls


def test_poll_journey_built_in_and_wallet_voters(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    member, _, addr = signup(app)
    dao_chain.mint_cards(addr, 2)
    wallet = Account.create()
    dao_chain.mint_cards(wallet.address, 1)
    wallet_api = wallet_signin(app, wallet)
    poll_id = open_poll(app, staff, dao_chain)

    listed = new_api(app).client.get(f"{BASE}/polls", headers=EN).get_json()["polls"]
    assert [p["id"] for p in listed] == [poll_id]
    assert [o["label"] for o in listed[0]["options"]] == [o["en"] for o in OPTIONS]
    shown = member.client.get(f"{BASE}/polls/{poll_id}", headers=EN).get_json()
    assert shown["poll"]["poll_id"] == 1 and shown["poll"]["snapshot_block"] is not None
    assert shown["results"]["state"] == "active" and shown["results"]["tallies"] == [0, 0, 0]
    e = shown["eligibility"]
    assert (e["can_vote"], e["weight"], e["reason"]) == (True, 2, "eligible")
    assert "you hold 2 ambassador cards" in e["message"]

    assert member.post(f"{BASE}/polls/{poll_id}/votes", {"option": 2}).status_code == 202
    prepared = wallet_api.post(f"{BASE}/polls/{poll_id}/ballot", {"option": 0}).get_json()
    typed = prepared["typed_data"]
    assert typed["message"] == {"pollId": "1", "option": 0, "voter": wallet.address}
    assert typed["domain"]["name"] == "TownPoll"
    resp = wallet_api.post(
        f"{BASE}/polls/{poll_id}/votes", {"option": 0, "signature": sign_typed(wallet, typed)}
    )
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert new_api(app).get(f"{BASE}/polls/{poll_id}/results").get_json()["votes_processing"] == 2
    settle(app, dao_chain)
    r = new_api(app).get(f"{BASE}/polls/{poll_id}/results").get_json()
    assert r["tallies"] == [1, 0, 2] and r["total_weight"] == 3
    assert r["voters_counted"] == 2 and r["votes_processing"] == 0
    assert r["total_supply"] >= 3
    with app.app_context():
        votes = {
            v.voter: (v.option, int(v.weight), v.state) for v in get_db().session.query(DaoPollVote)
        }
    assert votes == {addr: (2, 2, "counted"), wallet.address: (0, 1, "counted")}
    e = member.get(f"{BASE}/polls/{poll_id}/eligibility").get_json()
    assert e["reason"] == "already_voted" and e["option"] == 2

    dao_chain.mine(60)
    assert new_api(app).get(f"{BASE}/polls/{poll_id}/results").get_json()["state"] == "ended"


def test_poll_refusals_change_nothing(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    holder, _, holder_addr = signup(app)
    dao_chain.mint_cards(holder_addr, 1)
    member, _, _ = signup(app)
    before = poll_counts(app)
    # non-staff and anonymous cannot create
    assert_error(member.post(f"{BASE}/polls", poll_body()), 403, "forbidden")
    assert_error(new_api(app).post(f"{BASE}/polls", poll_body()), 401)
    bad_bodies = [
        {"options": [{"ja": "一つだけ"}]},
        {"options": [{"en": f"o{i}"} for i in range(11)]},
        {"options": "A, B"},
        {"options": [{"ja": "A"}, 5]},
        {"options": [{"ja": "A"}, {"en": "x" * 101}]},
        {"duration_blocks": 0},
        {"duration_blocks": "ten"},
        {"duration_blocks": 10**9},
        {"chamber": "senate"},
        {"title_ja": "", "title_en": ""},
        {"idempotency_key": "short"},
    ]
    for over in bad_bodies:
        assert_error(staff.post(f"{BASE}/polls", poll_body(**over)), 400, "invalid_input")
    assert poll_counts(app) == before

    poll_id = open_poll(app, staff, dao_chain)
    late, _, late_addr = signup(app)
    dao_chain.mint_cards(late_addr, 1)  # after the snapshot
    before = poll_counts(app)
    for bad in (3, -1, "two", None, True, 1.5):
        assert_error(
            holder.post(f"{BASE}/polls/{poll_id}/votes", {"option": bad}), 400, "invalid_option"
        )
    err = assert_error(member.post(f"{BASE}/polls/{poll_id}/votes", {"option": 0}), 403)
    assert err["code"] == "not_eligible" and err["details"]["reason"] == "no_card"
    err = assert_error(late.post(f"{BASE}/polls/{poll_id}/votes", {"option": 0}), 403)
    assert err["details"]["reason"] == "card_after_snapshot"
    assert_error(new_api(app).post(f"{BASE}/polls/{poll_id}/votes", {"option": 0}), 401)
    assert_error(holder.post(f"{BASE}/polls/999999/votes", {"option": 0}), 404)
    assert poll_counts(app) == before

    assert holder.post(f"{BASE}/polls/{poll_id}/votes", {"option": 1}).status_code == 202
    after_one = poll_counts(app)
    assert_error(holder.post(f"{BASE}/polls/{poll_id}/votes", {"option": 0}), 409, "already_voted")
    settle(app, dao_chain)
    assert_error(holder.post(f"{BASE}/polls/{poll_id}/votes", {"option": 0}), 409, "already_voted")
    assert poll_counts(app) == after_one

    dao_chain.mine(60)
    e = member.get(f"{BASE}/polls/{poll_id}/eligibility").get_json()
    assert (e["reason"], e["can_vote"]) == ("ended", False)
    assert_error(member.post(f"{BASE}/polls/{poll_id}/votes", {"option": 0}), 409, "voting_closed")
    assert poll_counts(app) == after_one


def test_poll_create_is_idempotent(manual_outbox, town, staff, dao_chain):
    app = manual_outbox
    body = poll_body(chamber="resident")
    first, again = staff.post(f"{BASE}/polls", body), staff.post(f"{BASE}/polls", body)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["poll"]["id"] == again.get_json()["poll"]["id"]
    c = poll_counts(app)
    assert (c["dao_polls"], c["outbox_txs"]) == (1, 1)
    settle(app, dao_chain)
    r = new_api(app).get(f"{BASE}/polls/{first.get_json()['poll']['id']}/results").get_json()
    assert r["state"] == "active" and r["tallies"] == [0, 0, 0]
