"""A card order whose mint kept failing is refunded once, however many reconciles run at once
(an overlapping beat run, a second worker): one refund at the provider, one "payment.refund"
audit row, its unit of the listing's supply given back once. PostgreSQL and SQLite (where
FOR UPDATE does nothing)."""

from __future__ import annotations

import sqlalchemy as sa

from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.shop.card_payments import MAX_MINT_ATTEMPTS
from backend.shop.models import ListingStock, Order
from backend.shop.services import card_payment_service, payment_provider
from tests.concurrency import n_at_once
from tests.shop.shop_helpers import Api, listing_id


def _reserved(app, listing: int) -> int:
    with app.app_context():
        return int(
            get_db().session.scalar(
                sa.select(ListingStock.reserved).where(ListingStock.listing_id == listing)
            )
            or 0
        )


def test_ten_reconciles_at_once_refund_an_order_whose_mint_kept_failing_once(any_db_shop):
    app = any_db_shop
    listing = listing_id(app, "card")
    fan = Api(app.test_client())
    fan.signup("fan@example.com")
    before = _reserved(app, listing)
    placed = fan.post(
        "/api/shop/orders", {"listing_id": listing, "quantity": 1, "idempotency_key": "fan-order-1"}
    ).get_json()
    assert "order" in placed, placed
    order = placed["order"]
    with app.app_context():
        payload, headers = payment_provider().signed_event(order["id"], "paid", 5000)
    fan.client.post("/api/payments/webhooks/test", data=payload, headers=headers)
    assert _reserved(app, listing) == before + 1
    with app.app_context():
        s = get_db().session
        row = s.scalar(sa.select(Order).where(Order.public_id == order["id"]))
        assert row.status == "processing"
        row.mint_attempts = MAX_MINT_ATTEMPTS  # the earlier mints failed and were sent again
        tx = s.get(OutboxTx, row.outbox_tx_id)
        tx.error = "PrimarySaleSoldOut(1)"
        transition(tx, S.FAILED, "estimate reverted: PrimarySaleSoldOut(1)")
        s.commit()

    results = n_at_once(app, 10, lambda _i: card_payment_service().reconcile()["refunded"])
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 1, results
    with app.app_context():
        s = get_db().session
        row = s.scalar(sa.select(Order).where(Order.public_id == order["id"]))
        assert row.status == "refunded" and row.refund_ref
        assert len(payment_provider().refunds) == 1
        refunds = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "payment.refund", AuditLog.subject_id == order["id"])
        )
    assert refunds == 1
    assert _reserved(app, listing) == before
