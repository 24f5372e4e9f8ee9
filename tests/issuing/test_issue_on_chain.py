"""Issuing by CSV on real anvil, end to end: 50 recipients (accounts by email, printed cards,
plain addresses) and one bad row -> preview -> confirm -> issueBatch calls (chunked) confirmed
on chain -> each recipient's balance read on chain is right and each row confirmed. A single
issue is a batch of one."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from web3 import Web3

from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.issuing import services as issuing
from backend.merchants.services import merchant_service
from tests.issuing.conftest import _signup, chain_balance, counts, upload
from tests.merchants.conftest import run_chain


@pytest.fixture
def recipients(app, world):
    """40 accounts by email, 5 by their printed card, 5 plain addresses: (recipient, holder)."""
    out = []
    with app.app_context():
        staff = world.user(world.staff)
        for i in range(45):
            user = _signup(app, f"fan{i}@example.com")
            address = user.addresses[0].address
            if i < 40:
                out.append((f"fan{i}@example.com", address))
            else:
                card, _pin = merchant_service().issue_card_by_email(
                    staff, world.town(), f"fan{i}@example.com"
                )
                out.append((card.card_code, address))
        for _ in range(5):
            address = Web3.to_checksum_address("0x" + secrets.token_hex(20))
            out.append((address.lower(), address))
    return out


def test_csv_of_fifty_is_issued_on_chain(app, world, w3, recipients, monkeypatch):
    monkeypatch.setattr(issuing, "CHUNK_SIZE", 20)  # 50 recipients: three issueBatch calls
    staff = world.api(world.staff)
    before = counts(app)
    lines = ["recipient,amount,note"]
    lines += [f"{r},{100 + i},row {i}" for i, (r, _h) in enumerate(recipients)]
    # A bad row (line 8). (An e-mail with no account is no longer one: it is held, issue 14.)
    lines.insert(7, "CZZZZZZZZZZ,500,no such card")
    r = upload(staff, "sarabetsu", ("\n".join(lines) + "\n").encode())
    assert r.status_code == 201, r.get_data(as_text=True)
    batch = r.get_json()["issuance"]
    assert batch["state"] == "previewed"
    assert batch["ready_rows"] == 50 and batch["invalid_rows"] == 1
    assert batch["total"] == sum(100 + i for i in range(50))
    bad = [row for row in batch["rows"] if row["status"] == "invalid"]
    assert [b["line"] for b in bad] == [8] and "カードにこの番号はありません" in bad[0]["error"]
    assert counts(app)["outbox_txs"] == before["outbox_txs"]  # nothing queued by a preview

    r = staff.post(f"/api/towns/sarabetsu/issuances/{batch['id']}/confirm")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["issuance"]["state"] == "confirmed"
    with app.app_context():
        calls = (
            get_db()
            .session.scalars(
                sa.select(OutboxTx).where(OutboxTx.function == "issueBatch").order_by(OutboxTx.id)
            )
            .all()
        )
        assert [c.function for c in calls] == ["issueBatch"] * 3
        assert [len(c.args[0]) for c in calls] == [20, 20, 10]
        assert [c.idempotency_key for c in calls] == [
            f"issuing.batch:{batch['id']}:chunk:{n}" for n in range(3)
        ]
        audit = get_db().session.scalars(sa.select(AuditLog).order_by(AuditLog.id)).all()
        actions = [a.action for a in audit]
        # Each row names its actor, amount and reason, and belongs to the town's audit log.
        for a in audit:
            if a.action.startswith(("points.issuance.", "points.issue_batch")):
                assert a.town_id == world.town_id and a.actor.startswith("user:")
                assert a.reason == "River clean-up" and a.amount > 0
        assert actions.count("points.issuance.create") == 1
        assert actions.count("points.issuance.confirm") == 1
        assert actions.count("points.issue_batch") == 3

    run_chain(app, w3)
    status = staff.get(f"/api/towns/sarabetsu/issuances/{batch['id']}").get_json()["issuance"]
    assert status["state"] == "done", status
    assert status["progress"]["confirmed"] == 50 and status["progress"]["percent"] == 100
    by_line = {row["line"]: row for row in status["rows"]}
    assert by_line[8]["status"] == "invalid"
    with app.app_context():
        points = world.town().points_address
    for i, (_r, holder) in enumerate(recipients):
        assert chain_balance(w3, points, holder) == 100 + i
    assert sum(1 for row in status["rows"] if row["status"] == "confirmed") == 50


def test_one_person_by_email_is_a_batch_of_one(app, world, w3):
    staff = world.api(world.staff)
    r = staff.post(
        "/api/towns/sarabetsu/issuances",
        {
            "rows": [{"recipient": world.customer, "amount": 1200}],
            "programme_id": 4,
            "reason": "Photo contest prize",
            "idempotency_key": "single-1",
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    batch_id = r.get_json()["issuance"]["id"]
    assert staff.post(f"/api/towns/sarabetsu/issuances/{batch_id}/confirm").status_code == 200
    run_chain(app, w3)
    with app.app_context():
        holder = world.user(world.customer).addresses[0].address
        points = world.town().points_address
    assert chain_balance(w3, points, holder) == 1200
    body = staff.get(f"/api/towns/sarabetsu/issuances/{batch_id}").get_json()["issuance"]
    assert body["state"] == "done" and body["rows"][0]["status"] == "confirmed"
