"""Claimed points the mover gives up on (ADR 0017): the third failed transfer of a wallet's
points in a town stops the mover, and is no longer only a log line: one audit row
"points.claim.move_stuck", one operator alert (outbox_alerts), and the town's staff see the
people and points concerned with what waits for claims (JSON and the console's panel). Ten
movers at once following that failure write one row and one alert, on PostgreSQL and SQLite."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.accounts.services import AccountService
from backend.chain.api import get_vault
from backend.chain.indexer_models import TokenBalance
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxAlert, OutboxTx
from backend.claims.models import FAILED, SENT, TAKEN, ClaimTransfer, ClaimWallet, PointsClaim
from backend.claims.services import HeldRow, claim_service
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.merchants.conftest import Api

EMAIL = "mover@example.com"
PASSWORD = "correct horse battery"
POINTS = "0x" + "ab" * 20  # the town's points contract, as the projection names it


@pytest.fixture
def app(make_app, deployed, any_db_url) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _signup(app: Flask, email: str) -> int:
    with app.app_context():
        svc = AccountService(get_db().session(), lambda: get_vault(app))
        return svc.signup(email, PASSWORD, verified=True).id


def _outbox_row(s, key: str, state: str, error: str) -> int:
    tx = OutboxTx(
        idempotency_key=key,
        payload_hash="0x" + "00" * 32,
        state=state,
        sender_kind="relayer",
        sender_address="0x" + "cd" * 20,
        contract=POINTS,
        function="transfer",
        args=[],
        call_data="0x",
        error=error,
    )
    s.add(tx)
    s.flush()
    return tx.id


@pytest.fixture
def stuck(app: Flask, deployed) -> tuple[int, int, int]:
    """1,000 points held for EMAIL in a town, claimed by its verified owner, still in the claim
    wallet; two transfers failed and the third's call has just failed (the mover has not seen
    it yet). (town id, owner id, third transfer's id)."""
    owner = _signup(app, EMAIL)
    with app.app_context():
        s = get_db().session
        town = Town(
            slug="sarabetsu",
            name_ja="更別村",
            name_en="Sarabetsu",
            chain_id=deployed.chain_id,
            points_address=POINTS,
        )
        s.add(town)
        s.flush()
        svc = claim_service()
        wallet = svc.wallets_for([EMAIL])[EMAIL]
        for n, amount in enumerate((700, 300)):
            svc.hold(
                town_id=town.id,
                programme_id=3,
                batch_id=n + 1,
                rows=[HeldRow(n + 1, wallet, amount)],
                actor="user:1",
                reason="Snow clearing",
            )
        s.commit()
        assert svc.take(s.get(User, owner)) == 2
        wallet_id = s.scalar(sa.select(ClaimWallet.id))
        s.merge(
            TokenBalance(
                chain_id=town.chain_id, contract_address=POINTS, holder=wallet, amount=1000
            )
        )
        third = 0
        for number in range(3):
            error = f"execution reverted: try {number}"
            key = f"claims.move:{wallet_id}:{town.id}:{number}"
            move = ClaimTransfer(
                wallet_id=wallet_id,
                town_id=town.id,
                number=number,
                user_id=owner,
                to_address="0x" + "ef" * 20,
                amount=Decimal(1000),
                status=FAILED if number < 2 else SENT,
                outbox_tx_id=_outbox_row(s, key, "failed", error),
                error=error if number < 2 else "",
            )
            s.add(move)
            s.flush()
            third = move.id
        s.commit()
        return town.id, owner, third


def test_ten_movers_at_once_raise_one_alert_and_one_audit_row(app, stuck):
    town_id, owner, third = stuck
    results = n_at_once(app, 10, lambda _i: claim_service().move_claimed())
    assert results == [0] * 10, results  # nothing queued: the mover stopped
    with app.app_context():
        s = get_db().session
        move = s.get(ClaimTransfer, third)
        assert move.status == FAILED and move.error == "execution reverted: try 2"
        rows = s.scalars(
            sa.select(AuditLog).where(AuditLog.action == "points.claim.move_stuck")
        ).all()
        assert len(rows) == 1
        (row,) = rows
        assert row.town_id == town_id and int(row.amount) == 1000
        assert row.details["user_id"] == owner and row.details["failures"] == 3
        alerts = s.scalars(sa.select(OutboxAlert)).all()
        assert [(a.kind, a.resolved_at) for a in alerts] == [("claim_move_stuck", None)]
        assert "1000 points" in alerts[0].message and "3 failed transfers" in alerts[0].message
        # The claims stay the owner's, on their way: nothing was moved or lost.
        assert [c.state for c in s.scalars(sa.select(PointsClaim))] == [TAKEN, TAKEN]

    # Later beats change nothing more.
    n_at_once(app, 2, lambda _i: claim_service().move_claimed())
    with app.app_context():
        s = get_db().session
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "points.claim.move_stuck")
            )
            == 1
        )
        assert s.scalar(sa.select(sa.func.count()).select_from(OutboxAlert)) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(ClaimTransfer)) == 3


def test_the_towns_staff_see_the_points_the_mover_gave_up_on(app, stuck):
    town_id, _owner, _third = stuck
    with app.app_context():
        staff_user = get_db().session.get(User, _signup(app, "staff@example.com"))
        grant_town_role(staff_user, town_id, STAFF)
        get_db().session.commit()
    staff = Api(app)
    staff.login("staff@example.com")
    before = staff.get("/api/towns/sarabetsu/claims").get_json()["waiting"]
    assert (before["stuck_people"], before["stuck_points"]) == (0, 0)
    with app.app_context():
        claim_service().move_claimed()
    waiting = staff.get("/api/towns/sarabetsu/claims").get_json()["waiting"]
    assert (waiting["stuck_people"], waiting["stuck_points"]) == (1, 1000)
    assert waiting["claims"] == 0  # taken: not waiting for anyone to claim them
    for lang, words in (
        ("en", "1,000 points claimed by 1 people could not be moved to their accounts"),
        ("ja", "受け取りの済んだ 1 人分、1,000 ポイントを本人のアカウントへ移せませんでした"),
    ):
        page = staff.client.get("/towns/sarabetsu/admin/issue", headers={"Accept-Language": lang})
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'data-testid="claims-stuck"' in html and words in html
