"""Town staff verify a resident in person and the registrar key issues the pass through the
outbox (real anvil, PostgreSQL, the indexer); staff revoke it when they move away. One person,
one pass: a second visit, a second account or bad input change nothing."""

from __future__ import annotations

import sqlalchemy as sa

from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.residency.conftest import (
    BASE,
    ID,
    counts,
    form,
    login,
    pass_contract,
    resident,
    settle,
    signup,
)


def verify(api, person, **over):
    return form(api, f"{BASE}/verify", {"user_id": str(person), "saw_id": "1", **ID, **over})


def test_staff_verify_in_person_issue_then_revoke(manual_outbox, town, staff, dao_chain):
    app, (api, staff_id) = manual_outbox, staff
    _, uid, addr = signup(app, "hanako@example.com")

    found = api.client.get(f"{BASE}?q=HANAKO@example.com", headers={"Accept-Language": "en"})
    assert found.status_code == 200
    assert 'data-testid="verify-form"' in found.get_data(as_text=True)

    resp = verify(api, uid)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    row = resident(app, uid)
    assert row is not None
    assert (row["state"], row["method"], row["verified_by"]) == ("issuing", "in_person", staff_id)
    assert row["identity_hash"].startswith("0x") and len(row["identity_hash"]) == 66
    assert row["holder"] == addr
    # Nothing of the identity itself is stored, in any column.
    assert not any("花子" in str(v) or "1950" in str(v) for v in row.values())

    settle(app, dao_chain)
    row = resident(app, uid)
    assert row["state"] == "issued" and row["token_id"] == 1
    passes = pass_contract(dao_chain)
    assert passes.functions.balanceOf(addr).call() == 1
    assert passes.functions.passOf(bytes.fromhex(row["identity_hash"][2:])).call() == 1
    dao_chain.mine(1)
    assert passes.functions.getVotes(addr).call() == 1

    with app.app_context():
        audit = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "residency.issue"))
            .all()
        )
        assert len(audit) == 1
        assert audit[0].actor == f"user:{staff_id}" and audit[0].town_id == town.id
        assert audit[0].details["saw_id"] is True and audit[0].details["method"] == "in_person"

    page = api.client.get(BASE, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "hanako@example.com" in page and "Pass no. 1" in page

    # The same person again (a second visit): nothing new.
    before = counts(app)
    assert verify(api, uid).status_code == 303
    assert counts(app) == before

    # The same person on a second account: refused, nothing written.
    _, other, _ = signup(app, "hanako2@example.com")
    resp = verify(api, other, name="更別　花子", address="北海道河西郡更別村字更別１２３")
    assert resp.status_code == 409
    assert "another account" in resp.get_data(as_text=True)
    assert counts(app) == before

    # Revoke: a reason is required; then the pass is burned on chain.
    rid = row["id"]
    assert form(api, f"{BASE}/{rid}/revoke", {"reason": " "}).status_code == 400
    assert counts(app) == before
    assert form(api, f"{BASE}/{rid}/revoke", {"reason": "Moved to Obihiro"}).status_code == 303
    assert form(api, f"{BASE}/{rid}/revoke", {"reason": "again"}).status_code == 303
    settle(app, dao_chain)
    row = resident(app, uid)
    assert (row["state"], row["revoke_reason"]) == ("revoked", "Moved to Obihiro")
    assert passes.functions.balanceOf(addr).call() == 0
    with app.app_context():
        actions = (
            get_db()
            .session.scalars(sa.select(AuditLog.action).where(AuditLog.action.like("residency.%")))
            .all()
        )
    assert sorted(actions) == ["residency.issue", "residency.revoke"]

    # They move back: the same row is issued again, a new pass.
    assert verify(api, uid).status_code == 303
    settle(app, dao_chain)
    row = resident(app, uid)
    assert (row["state"], row["generation"], row["token_id"]) == ("issued", 2, 2)
    assert passes.functions.balanceOf(addr).call() == 1


def test_refusals_change_nothing(manual_outbox, town, staff):
    app, (api, _) = manual_outbox, staff
    _, uid, _ = signup(app, "taro@example.com")
    before = counts(app)
    cases = [
        ({"saw_id": ""}, 400, "saw an official ID"),
        ({"name": ""}, 400, "name as written"),
        ({"birth_date": "yesterday"}, 400, "YYYY-MM-DD"),
        ({"birth_date": "2999-01-01"}, 400, "YYYY-MM-DD"),
        ({"address": "x" * 301}, 400, "address as written"),
        ({"user_id": "999999"}, 404, "no such account"),
        ({"user_id": "-1"}, 404, "no such account"),
    ]
    for over, status, text in cases:
        resp = verify(api, uid, **over)
        assert resp.status_code == status, (over, resp.status_code)
        assert text.lower() in resp.get_data(as_text=True).lower(), over
    missing = api.client.get(f"{BASE}?q=nobody@example.com", headers={"Accept-Language": "en"})
    assert missing.status_code == 400
    assert "No account has this e-mail" in missing.get_data(as_text=True)
    assert form(api, f"{BASE}/424242/revoke", {"reason": "x"}).status_code == 404
    assert counts(app) == before


def test_only_town_staff(manual_outbox, town, staff):
    app = manual_outbox
    _, uid, _ = signup(app, "citizen@example.com")
    citizen = login(app, "citizen@example.com")
    before = counts(app)
    assert citizen.get(BASE).status_code == 403
    assert verify(citizen, uid).status_code == 403
    assert counts(app) == before
    anonymous = app.test_client().get(BASE)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_japanese_page(manual_outbox, town, staff):
    api, _ = staff
    _, uid, _ = signup(manual_outbox, "jiro@example.com")
    page = api.client.get(f"{BASE}?q=jiro@example.com", headers={"Accept-Language": "ja"})
    text = page.get_data(as_text=True)
    assert "窓口で住民を確認する" in text and "公的な本人確認書類" in text
    resp = form(api, f"{BASE}/verify", {"user_id": str(uid), **ID}, lang="ja")
    assert resp.status_code == 400
    assert "本人確認書類を確認したことにチェック" in resp.get_data(as_text=True)


def test_find_a_person_by_the_code_on_their_phone(manual_outbox, town, staff):
    """A resident with no e-mail to spell out shows the customer code on their phone."""
    api, _ = staff
    person, uid, _ = signup(manual_outbox, "no-typing@example.com")
    code = person.post("/api/me/customer-codes").get_json()["code"]
    page = api.client.get(f"{BASE}?q={code.lower()}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "no-typing@example.com" in text and f'name="user_id" value="{uid}"' in text
    bad = api.client.get(f"{BASE}?q=P000000000000", headers={"Accept-Language": "en"})
    assert bad.status_code == 400
