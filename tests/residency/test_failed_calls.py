"""A pass whose issue call fails on chain is not left "issuing" for ever: the row becomes
"failed" once (however often and however many at once the failure is seen: the beat task, the
person's page, the staff's list), with one audit row; the pages say so in Japanese and English;
verifying the person again issues the pass once, under a new outbox key. A revocation that
fails leaves the pass issued, and revoking again sends a new call.

The outbox's failure is made as the outbox makes it when an estimate reverts: the queued row
moves to "failed" (backend/chain/outbox/states.py) with the decoded error, and is never sent.
"""

from __future__ import annotations

from tests.residency.conftest import (
    BASE,
    ERROR,
    ID,
    audits,
    fail_call,
    form,
    issue_calls,
    pass_contract,
    resident,
    settle,
    signup,
)


def test_pages_say_the_issue_failed_and_a_second_verify_issues_the_pass_on_chain(
    manual_outbox, town, staff, dao_chain
):
    app, (api, _) = manual_outbox, staff
    person, uid, addr = signup(app, "hanako@example.com")
    assert (
        form(api, f"{BASE}/verify", {"user_id": str(uid), "saw_id": "1", **ID}).status_code == 303
    )
    ((tx_id, _, _),) = issue_calls(app)
    fail_call(app, tx_id)
    settle(app, dao_chain)  # nothing to send: the failed call stays failed

    page = person.client.get("/me/residency", headers={"Accept-Language": "en"})
    text = page.get_data(as_text=True)
    assert 'data-testid="residency-failed-sarabetsu"' in text
    assert "Your pass could not be issued" in text and "bring an official ID" in text
    assert 'http-equiv="refresh"' not in text  # nothing on its way: the page stops reloading
    ja = person.client.get("/me/residency", headers={"Accept-Language": "ja"}).get_data(
        as_text=True
    )
    assert "パスを発行できませんでした" in ja
    assert resident(app, uid)["state"] == "failed"

    console = api.client.get(f"{BASE}?q=hanako@example.com", headers={"Accept-Language": "en"})
    text = console.get_data(as_text=True)
    assert "Issue failed" in text and ERROR in text
    assert 'data-testid="person-failed"' in text and 'data-testid="verify-form"' in text
    ja = api.client.get(f"{BASE}?q=hanako@example.com", headers={"Accept-Language": "ja"})
    assert "発行失敗" in ja.get_data(as_text=True)
    row = resident(app, uid)
    refused = form(api, f"{BASE}/{row['id']}/revoke", {"reason": "Moved away"})
    assert refused.status_code == 409 and "never issued" in refused.get_data(as_text=True)

    # Verified again: one pass on chain, the person's own.
    assert (
        form(api, f"{BASE}/verify", {"user_id": str(uid), "saw_id": "1", **ID}).status_code == 303
    )
    settle(app, dao_chain)
    row = resident(app, uid)
    assert (row["state"], row["generation"], row["token_id"]) == ("issued", 2, 1)
    passes = pass_contract(dao_chain)
    assert passes.functions.balanceOf(addr).call() == 1
    assert passes.functions.passOf(bytes.fromhex(row["identity_hash"][2:])).call() == 1
    assert [state for _i, _k, state in issue_calls(app)] == ["failed", "confirmed"]
    assert audits(app, "residency.issue") == 2 and audits(app, "residency.issue_failed") == 1


def test_a_failed_revocation_leaves_the_pass_issued_and_revoking_again_sends_a_new_call(
    manual_outbox, town, staff, dao_chain
):
    app, (api, _) = manual_outbox, staff
    _, uid, addr = signup(app, "jiro@example.com")
    assert (
        form(api, f"{BASE}/verify", {"user_id": str(uid), "saw_id": "1", **ID}).status_code == 303
    )
    settle(app, dao_chain)
    row = resident(app, uid)
    assert row["state"] == "issued"
    rid = row["id"]
    assert form(api, f"{BASE}/{rid}/revoke", {"reason": "Moved to Obihiro"}).status_code == 303
    first = resident(app, uid)["revoke_tx_id"]
    fail_call(app, first, "execution reverted: AccessControlUnauthorizedAccount()")

    page = api.client.get(BASE, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert resident(app, uid)["state"] == "issued"
    assert "The revocation failed on the chain" in page and "AccessControlUnauthorized" in page
    assert audits(app, "residency.revoke_failed") == 1
    again = api.client.get(BASE, headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "取り消しに失敗しました" in again
    assert audits(app, "residency.revoke_failed") == 1

    assert form(api, f"{BASE}/{rid}/revoke", {"reason": "Moved to Obihiro"}).status_code == 303
    row = resident(app, uid)
    assert row["state"] == "revoking" and row["revoke_tx_id"] != first
    settle(app, dao_chain)
    assert resident(app, uid)["state"] == "revoked"
    assert pass_contract(dao_chain).functions.balanceOf(addr).call() == 0
    assert audits(app, "residency.revoke") == 2
