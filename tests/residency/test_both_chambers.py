"""The resident chamber end to end, and a proposal put to both chambers (real anvil, the
relayer, the indexer): residents whose passes staff issued vote one person one vote; a payout
put to both chambers passes only when both pass it. Card chamber For + resident chamber
Against: not passed, and the treasury refuses to queue it; both For: queued, executed, paid
once. Block numbers are the chain's (mined), never the wall clock."""

from __future__ import annotations

import uuid

from tests.accounts.conftest import assert_error
from tests.residency.conftest import BASE as RESIDENTS
from tests.residency.conftest import form, login, make_staff, settle, signup

DAO = "/api/towns/sarabetsu/dao"
RECIPIENT = "0x00000000000000000000000000000000000000E4"


def _residents(app, town, dao_chain, n):
    """`n` people whose resident passes staff issued (in person), as API clients."""
    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    staff = login(app, "registry@example.com")
    apis = []
    for i in range(n):
        api, uid, _ = signup(app, f"resident{i}@example.com")
        data = {
            "user_id": str(uid),
            "saw_id": "1",
            "name": f"更別 住民{i}",
            "birth_date": f"19{50 + i}-01-01",
            "address": "北海道河西郡更別村",
        }
        assert form(staff, f"{RESIDENTS}/verify", data).status_code == 303
        apis.append(api)
    settle(app, dao_chain)
    dao_chain.mine(1)  # the passes' votes count from the next block
    return staff, apis


def _joint_proposal(app, staff, dao_chain):
    resp = staff.post(
        f"{DAO}/proposals",
        {
            "chamber": "both",
            "token": "yen",
            "recipient": RECIPIENT,
            "amount": 10_000,
            "title_ja": "除雪車の購入",
            "title_en": "A snowplough",
            "idempotency_key": f"test-{uuid.uuid4().hex}",
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    card = resp.get_json()["proposal"]
    assert card["chamber"] == "card" and card["joint_of"] is None
    listed = staff.get(f"{DAO}/proposals").get_json()["proposals"]
    resident = next(p for p in listed if p["joint_of"] == card["id"])
    assert resident["chamber"] == "resident" and resident["title_en"] == "A snowplough"
    settle(app, dao_chain)
    dao_chain.mine(2)  # past the voting delay
    settle(app, dao_chain)  # reads follow the indexer (issue 16 §1)
    return card["id"], resident["id"]


def _vote(app, api, pid, support, weight):
    e = api.get(f"{DAO}/proposals/{pid}/eligibility").get_json()
    assert e["can_vote"] and e["weight"] == weight, e
    resp = api.post(f"{DAO}/proposals/{pid}/votes", {"support": support})
    assert resp.status_code == 202, resp.get_data(as_text=True)


def test_a_proposal_put_to_both_chambers_passes_only_with_both(manual_outbox, town, dao_chain):
    app = manual_outbox
    dao_chain.fund_treasury(100_000)
    holder, _, holder_addr = signup(app, "holder@example.com")
    dao_chain.mint_cards(holder_addr, 2)
    registry, residents = _residents(app, town, dao_chain, 2)
    staff_api, staff_id, _ = signup(app, "dao-staff@example.com")
    make_staff(app, town, staff_id)
    staff = login(app, "dao-staff@example.com")

    # 1. Cards say yes, residents say no: not passed, and the treasury will not queue it.
    card, resident = _joint_proposal(app, staff, dao_chain)
    _vote(app, holder, card, "for", 2)
    for r in residents:
        _vote(app, r, resident, "against", 1)  # one person, one vote
    settle(app, dao_chain)
    # One person one vote: a second ballot from the same resident is refused.
    assert_error(residents[0].post(f"{DAO}/proposals/{resident}/votes", {"support": 1}), 409)
    # A card holder with no pass has no vote in the resident chamber.
    e = holder.get(f"{DAO}/proposals/{resident}/eligibility").get_json()
    assert (e["can_vote"], e["reason"]) == (False, "no_pass")
    dao_chain.mine(301)
    settle(app, dao_chain)  # reads follow the indexer
    r = staff.get(f"{DAO}/proposals/{card}/results").get_json()
    assert r["state"] == "succeeded"
    assert r["joint"]["resident_state"] == "defeated" and r["joint"]["outcome"] == "defeated"
    res = staff.get(f"{DAO}/proposals/{resident}/results").get_json()
    assert res["votes"] == {"for": 0, "against": 2, "abstain": 0}
    err = assert_error(staff.post(f"{DAO}/proposals/{card}/queue"), 409, "wrong_state")
    assert "両院の可決が必要" in err["message"]
    settle(app, dao_chain)
    assert staff.get(f"{DAO}/proposals/{card}/results").get_json()["state"] == "succeeded"
    page = staff.client.get(
        f"/towns/sarabetsu/dao/proposals/{card}", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert 'data-outcome="defeated"' in page and "Not passed: a chamber did not pass it." in page
    page = staff.client.get(f"/towns/sarabetsu/dao/proposals/{resident}").get_data(as_text=True)
    assert "これは住民による承認です" in page and 'data-action="queue"' not in page

    # 2. Both say yes: passed; the payout is queued from the card chamber's row only.
    card, resident = _joint_proposal(app, staff, dao_chain)
    _vote(app, holder, card, "for", 2)
    for r in residents:
        _vote(app, r, resident, "for", 1)
    settle(app, dao_chain)
    dao_chain.mine(301)
    settle(app, dao_chain)  # reads follow the indexer
    r = staff.get(f"{DAO}/proposals/{card}/results").get_json()
    assert (r["joint"]["card_state"], r["joint"]["resident_state"]) == ("succeeded", "succeeded")
    assert r["joint"]["outcome"] == "passed"
    page = staff.client.get(f"/towns/sarabetsu/dao/proposals/{card}").get_data(as_text=True)
    assert 'data-outcome="passed"' in page and "両院で可決されました。" in page
    assert_error(staff.post(f"{DAO}/proposals/{resident}/queue"), 409, "wrong_state")
    assert staff.post(f"{DAO}/proposals/{card}/queue").status_code == 202
    settle(app, dao_chain)
    dao_chain.increase_time(61)
    executed = staff.post(f"{DAO}/proposals/{card}/execute")
    assert executed.status_code == 202, executed.get_json()
    settle(app, dao_chain)
    assert staff.get(f"{DAO}/proposals/{card}/results").get_json()["state"] == "executed"
    assert dao_chain.yen_balance(RECIPIENT) == 10_000  # paid once
    del registry, staff_api
