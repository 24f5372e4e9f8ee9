"""A ticket check-in whose usePerk call fails on chain gives its use back: the check-in becomes
"failed" once (however many look-ups, "my collection" pages and beat runs see it at once), with
one audit row, and the holder's ticket has the use again. PostgreSQL and SQLite."""

from __future__ import annotations

import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.regions.models import Town
from backend.shop.models import CheckIn
from backend.shop.services import checkin_service, shop_service
from tests.concurrency import n_at_once
from tests.shop.shop_helpers import VENUE, Api, bought_card, drive

ERROR = "ERC721NonexistentToken(1)"


def _check_in(venue: Api, code: str, key: str):
    return venue.post(
        "/api/shop/towns/sarabetsu/checkin", {"code": code, "perk_id": 1, "idempotency_key": key}
    )


def _fail(app, check_in_id: int) -> None:
    """What the outbox does when the call's estimate reverts: queued -> failed, never sent."""
    with app.app_context():
        s = get_db().session
        tx = s.get(OutboxTx, s.get(CheckIn, check_in_id).outbox_tx_id)
        tx.error = ERROR
        transition(tx, S.FAILED, f"estimate reverted: {ERROR}")
        s.commit()


def _failed_audits(app) -> int:
    with app.app_context():
        return get_db().session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "nft.use_perk_failed")
        )


def test_a_failed_check_in_gives_the_use_back_once(any_db_shop, w3):
    app = any_db_shop
    fan, token = bought_card(app, w3)
    venue = Api(app.test_client())
    assert venue.post("/api/auth/login", {"email": VENUE[0], "password": VENUE[1]}).status_code
    code = token["ticket_code"]
    first = _check_in(venue, code, "use-00000001")
    assert first.status_code == 201
    check_in_id = first.get_json()["checkin"]["id"]
    seen = venue.post("/api/shop/towns/sarabetsu/checkin/lookup", {"code": code}).get_json()
    assert seen["perks"][0]["uses_left"] == 2  # processing: counted as used
    _fail(app, check_in_id)

    with app.app_context():
        venue_id = get_db().session.scalar(sa.select(User.id).where(User.email == VENUE[0]))
        fan_id = get_db().session.scalar(sa.select(User.id).where(User.email == "fan@example.com"))

    def see(i: int) -> int:
        s = get_db().session
        if i % 3 == 0:
            from backend.shop.tasks import fail_lost_checkins

            fail_lost_checkins()
            return -1
        if i % 3 == 1:
            town = s.scalar(sa.select(Town).where(Town.slug == "sarabetsu"))
            view = checkin_service(shop_service()).lookup(s.get(User, venue_id), town, code, "en")
            return int(view.perks[0].uses_left)
        items = shop_service().my_collection(s.get(User, fan_id), "en")
        return int(items[0]["perks"][0].uses_left)

    results = n_at_once(app, 9, see)
    assert [r for r in results if r != -1] == [3] * 6, results
    assert _failed_audits(app) == 1
    with app.app_context():
        row = get_db().session.get(CheckIn, check_in_id)
        assert row.status == "failed"
        audit = get_db().session.scalar(
            sa.select(AuditLog).where(AuditLog.action == "nft.use_perk_failed")
        )
        assert audit.actor == "system:outbox" and audit.details["error"] == ERROR
        assert audit.details["check_in_id"] == check_in_id and audit.town_id == row.town_id
    mine = fan.get("/api/shop/my/collection").get_json()["tokens"][0]
    assert mine["perks"][0]["uses_left"] == 3

    # The venue checks the ticket in again: one use marked on chain.
    again = _check_in(venue, code, "use-00000002")
    assert again.status_code == 201
    drive(app, w3)
    with app.app_context():
        statuses = get_db().session.scalars(sa.select(CheckIn.status).order_by(CheckIn.id)).all()
    assert statuses == ["failed", "done"]
    mine = fan.get("/api/shop/my/collection").get_json()["tokens"][0]
    assert mine["perks"][0]["uses_left"] == 2
    assert _failed_audits(app) == 1
