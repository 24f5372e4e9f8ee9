"""Issue 14 §3 end to end on real anvil: staff issue to an e-mail address with no account,
twice (two programmes, so two lots); the points are issued on chain to the claim wallet
reserved for that address. Someone signs up with the address: nothing moves until the mailed
link (a real SMTP server) is followed. Then the claims are taken, the worker's beat moves the
wallet's points to the account by a relayed transfer, and the account holds the same lots with
their original expiry, on chain and on its points page."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import sqlalchemy as sa

from backend.accounts.models import User
from backend.claims import tasks
from backend.claims.models import HELD, MOVED, TAKEN, ClaimTransfer, ClaimWallet, PointsClaim
from backend.core.db import get_db
from backend.core.models import AuditLog
from tests.claims.conftest import issue, lots
from tests.issuing.conftest import chain_balance
from tests.merchants.conftest import PASSWORD, Api, run_chain

EMAIL = "newcomer@example.com"


def _claims(app) -> list[tuple[str, int]]:
    with app.app_context():
        rows = get_db().session.scalars(sa.select(PointsClaim).order_by(PointsClaim.id)).all()
        return [(c.state, int(c.amount)) for c in rows]


def _audit(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(
            get_db().session.scalars(sa.select(AuditLog).where(AuditLog.action == action)).all()
        )


def _beat(app) -> int:
    """What the worker's beat runs for claims (the same task functions)."""
    with app.app_context():
        taken = tasks.take_verified()
        moved = tasks.move_claimed()
        get_db().session.remove()
    return taken + moved


def test_points_for_an_unknown_address_wait_and_arrive_with_their_expiry(app, world, w3, mailbox):
    staff = world.api(world.staff)
    # 1. Issued to an address with no account: held, not refused.
    first = issue(staff, EMAIL.upper(), 700, "claim-1", programme_id=3)
    row = first["rows"][0]
    assert row["status"] == "ready" and row["held"] is True and row["error"] == ""
    assert row["held_for"].startswith(f"{EMAIL} の方が登録")  # ja by default
    assert staff.post(f"/api/towns/sarabetsu/issuances/{first['id']}/confirm").status_code == 200
    # 2. Another issuance to the same address, from another programme (another expiry day).
    second = issue(staff, EMAIL, 300, "claim-2", programme_id=4)
    assert second["rows"][0]["address"] == row["address"]  # the same wallet waits for it
    assert staff.post(f"/api/towns/sarabetsu/issuances/{second['id']}/confirm").status_code == 200
    run_chain(app, w3)
    for batch in (first, second):
        body = staff.get(f"/api/towns/sarabetsu/issuances/{batch['id']}").get_json()["issuance"]
        assert body["state"] == "done", body
    with app.app_context():
        points = world.town().points_address
        wallet = get_db().session.scalar(sa.select(ClaimWallet))
        assert wallet is not None and wallet.email == EMAIL and wallet.claimed_by is None
        wallet_address = wallet.address
    held_lots = lots(w3, points, wallet_address)
    assert sorted(a for _d, a in held_lots) == [300, 700] and len({d for d, _a in held_lots}) == 2
    assert chain_balance(w3, points, wallet_address) == 1000
    assert _claims(app) == [(HELD, 700), (HELD, 300)]
    created = _audit(app, "points.claim.create")
    assert len(created) == 2 and {a.town_id for a in created} == {world.town_id}
    with app.app_context():
        staff_id = world.user(world.staff).id
    assert all(a.actor == f"user:{staff_id}" for a in created)
    waiting = staff.get("/api/towns/sarabetsu/claims").get_json()["waiting"]
    assert waiting == {
        "claims": 2,
        "people": 1,
        "points": 1000,
        "lapsed_points": 0,
        "stuck_people": 0,
        "stuck_points": 0,
    }
    page = staff.client.get("/towns/sarabetsu/admin/issue", headers={"Accept-Language": "en"})
    assert "1,000 points for 1 email addresses are waiting" in page.get_data(as_text=True)

    # 3. Someone signs up with the address but has not followed the link: nothing moves.
    person = Api(app)
    r = person.post("/api/accounts/signup", {"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert _beat(app) == 0
    run_chain(app, w3)
    with app.app_context():
        user = get_db().session.scalar(sa.select(User).where(User.email == EMAIL))
        assert user is not None and user.email_verified_at is None
        own = user.addresses[0].address
    assert chain_balance(w3, points, own) == 0
    assert _claims(app) == [(HELD, 700), (HELD, 300)] and not _audit(app, "points.claim.take")
    assert person.get("/api/me/claims").get_json() == {"arriving": []}

    # 4. The mailed link (real SMTP): verified, the claims are theirs, the beat moves them.
    link = mailbox.wait_for(EMAIL).link()
    assert person.client.get(urlsplit(link).path).status_code == 200
    assert _claims(app) == [(TAKEN, 700), (TAKEN, 300)]
    taken = _audit(app, "points.claim.take")
    assert len(taken) == 2 and all(a.actor.startswith("user:") for a in taken)
    assert person.get("/api/me/claims").get_json() == {
        "arriving": [{"town": "sarabetsu", "points": 1000}]
    }
    mine = person.client.get("/points", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "on their way to you: 1,000 points" in mine
    assert _beat(app) == 1  # one transfer of the wallet's balance in this town
    assert _beat(app) == 0  # not twice while it is on its way
    run_chain(app, w3)
    assert _beat(app) == 0  # delivered: the claims are settled
    assert _claims(app) == [(MOVED, 700), (MOVED, 300)]
    with app.app_context():
        move = get_db().session.scalar(sa.select(ClaimTransfer))
        assert move is not None and move.status == "confirmed" and int(move.amount) == 1000
        assert move.to_address == own
    assert len(_audit(app, "points.claim.move")) == 1

    # 5. The account holds the same lots, with their original expiry days.
    assert chain_balance(w3, points, own) == 1000
    assert chain_balance(w3, points, wallet_address) == 0
    assert sorted(lots(w3, points, own)) == sorted(held_lots)
    mine = person.client.get("/points", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<strong data-testid="balance">1,000</strong>' in mine
    assert "on their way" not in mine
    for day, _amount in held_lots:
        last = dt.date(1970, 1, 1) + dt.timedelta(days=day - 1)  # the last day they can be used
        assert last.isoformat() in mine
    assert staff.get("/api/towns/sarabetsu/claims").get_json()["waiting"]["claims"] == 0

    # 6. A later issuance to the verified address goes straight to the account.
    third = issue(staff, EMAIL, 50, "claim-3")
    assert third["rows"][0]["held"] is False and third["rows"][0]["address"] == own


def test_a_merchants_only_town_cannot_hold_points_for_an_address(app, world, w3):
    """Where the town's points go to shops only, a transfer to a person reverts: points held
    for an address could never reach it, so such a row is refused, and nothing is reserved."""
    staff = world.api(world.staff)
    r = staff.client.put(
        "/api/towns/sarabetsu/transfer-policy",
        json={"policy": "merchants_only", "idempotency_key": "policy-shops-only"},
        headers={"X-CSRFToken": staff.client.get("/api/csrf").get_json()["csrf_token"]},
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    run_chain(app, w3)
    policy = staff.get("/api/towns/sarabetsu/transfer-policy").get_json()["transfer_policy"]
    assert policy["on_chain"] == "merchants_only", policy
    r = staff.post(
        "/api/towns/sarabetsu/issuances",
        {
            "rows": [{"recipient": EMAIL, "amount": 100}],
            "programme_id": 3,
            "reason": "Snow clearing",
            "idempotency_key": "shops-only-1",
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    row = r.get_json()["issuance"]["rows"][0]
    assert row["status"] == "invalid" and row["held"] is False
    assert "お店あてにしか送れない" in row["error"]
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(ClaimWallet)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(PointsClaim)) == 0


def test_points_nobody_claims_expire_on_chain_and_their_claim_lapses(app, world, w3, mailbox):
    """Unclaimed points expire on chain like anyone's; the hourly sweep then stops counting
    them as waiting. Whoever verifies the address later gets the (empty) wallet: nothing is
    sent."""
    staff = world.api(world.staff)
    late = "late@example.com"
    batch = issue(staff, late, 400, "lapse-1", programme_id=4)
    assert staff.post(f"/api/towns/sarabetsu/issuances/{batch['id']}/confirm").status_code == 200
    run_chain(app, w3)
    wallet = batch["rows"][0]["address"]
    with app.app_context():
        points = world.town().points_address
        assert tasks.lapse_held() == 0  # the points are there: still waiting
    assert chain_balance(w3, points, wallet) == 400
    (expiry_day, _amount) = lots(w3, points, wallet)[0]
    # The chain's clock to the lot's expiry day (the test's chain changes are reverted after).
    now = int(w3.eth.get_block("latest").timestamp)
    w3.provider.make_request("evm_increaseTime", [expiry_day * 86_400 - 9 * 3_600 - now + 60])
    w3.provider.make_request("anvil_mine", ["0x1"])
    run_chain(app, w3)
    assert chain_balance(w3, points, wallet) == 0
    with app.app_context():
        assert tasks.lapse_held() == 1
        assert tasks.lapse_held() == 0
    assert _claims(app) == [("lapsed", 400)]
    waiting = staff.get("/api/towns/sarabetsu/claims").get_json()["waiting"]
    assert waiting == {
        "claims": 0,
        "people": 0,
        "points": 0,
        "lapsed_points": 400,
        "stuck_people": 0,
        "stuck_points": 0,
    }
    page = staff.client.get("/towns/sarabetsu/admin/issue", headers={"Accept-Language": "ja"})
    assert "受け取られないまま失効したポイント: 400 ポイント" in page.get_data(as_text=True)

    person = Api(app)
    r = person.post("/api/accounts/signup", {"email": late, "password": PASSWORD})
    assert r.status_code == 201, r.get_data(as_text=True)
    link = mailbox.wait_for(late).link()
    assert person.client.get(urlsplit(link).path).status_code == 200
    assert _claims(app) == [(TAKEN, 400)]
    assert _beat(app) == 0  # nothing to send
    assert _claims(app) == [(MOVED, 400)]
    with app.app_context():
        assert get_db().session.scalar(sa.select(sa.func.count()).select_from(ClaimTransfer)) == 0
