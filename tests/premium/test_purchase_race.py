"""Money races on PostgreSQL and on SQLite: ten checkouts at once over the person's monthly
limit reserve at most the limit (the guarded UPDATE of the month's counter decides; the others
get LimitReached and wrote nothing), and one purchase's paid webhook delivered ten times at once
issues once (the guarded status UPDATE decides: one outbox call, one sale and one issue audit
row)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.premium.errors import LimitReached
from backend.premium.models import PremiumPurchase, PremiumTotal
from backend.premium.services import payment_provider, purchase_service
from backend.regions.models import Town
from backend.shop.services import card_payment_service
from tests.concurrency import in_app, n_at_once, twin_first
from tests.premium.conftest import actions, counts


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: only the rows count here
    return app


def _checkout(app, town_id: int, user_id: int, yen: int):
    s = get_db().session
    return purchase_service().checkout(
        s.get(User, user_id), s.get(Town, town_id), str(yen), uuid.uuid4().hex
    )


def test_ten_checkouts_at_once_over_the_monthly_limit_reserve_at_most_the_limit(
    app, town_id, offer, buyer_id
):
    # 10 x 10,000 yen against a limit of 30,000 yen a month: three fit.
    results = n_at_once(
        app, 10, lambda i: _checkout(app, town_id, buyer_id, 10000).purchase.id, request=True
    )
    won = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, LimitReached)]
    assert len(won) == 3 and len(refused) == 7, results
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(PremiumPurchase)) == 3
        totals = dict(s.execute(sa.select(PremiumTotal.user_id, PremiumTotal.total_yen)).all())
    assert totals == {0: 30000, buyer_id: 30000}


def test_ten_deliveries_of_one_paid_webhook_at_once_issue_once(app, town_id, offer, buyer_id):
    with app.test_request_context():
        placed = _checkout(app, town_id, buyer_id, 1000)
        pid, purchase_id = placed.purchase.public_id, placed.purchase.id
        payload, headers = payment_provider().signed_event(pid, "paid", 1000)

    def deliver(_i: int) -> str:
        return card_payment_service().handle_webhook(payment_provider(), payload, headers)

    results = n_at_once(app, 10, deliver, request=True)
    assert sorted(map(str, results)) == ["duplicate"] * 9 + ["processed"], results
    with app.app_context():
        s = get_db().session
        calls = s.scalars(
            sa.select(OutboxTx.idempotency_key).where(OutboxTx.idempotency_key.like("premium:%"))
        ).all()
        status = s.scalar(
            sa.select(PremiumPurchase.status).where(PremiumPurchase.id == purchase_id)
        )
    assert calls == [f"premium:{pid}:1"] and status == "processing"
    assert actions(app, purchase_id) == ["points.issue", "premium.sale"]
    assert counts(app)["reserved_yen"] == 2000


def test_a_twin_checkout_that_reached_the_limit_first_is_the_answer_not_a_refusal(
    app, town_id, offer, buyer_id, monkeypatch
):
    """A double-clicked "buy points" for the last 10,000 of the 30,000 yen a month: the second
    request finds no purchase with its key; then the first commits and reserves the 10,000; then
    the second tries to. It gets the first purchase, not LimitReached: its purchase row (UNIQUE
    per key) is written before the limit is reserved, so the key decides first."""
    from backend.premium.offers import OfferService

    for _ in range(2):  # 20,000 of the month's 30,000 bought before
        in_app(app, lambda: _checkout(app, town_id, buyer_id, 10000), request=True)()
    key = uuid.uuid4().hex

    def checkout() -> int:
        s = get_db().session
        placed = purchase_service().checkout(
            s.get(User, buyer_id), s.get(Town, town_id), "10000", key
        )
        return int(placed.purchase.id)

    twin = twin_first(monkeypatch, OfferService, "quote", app, checkout)
    second = in_app(app, checkout, request=True)()
    assert second == twin[0]
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(PremiumPurchase)) == 3
        totals = dict(s.execute(sa.select(PremiumTotal.user_id, PremiumTotal.total_yen)).all())
    assert totals == {0: 30000, buyer_id: 30000}
    # Another key over the limit is still refused, and reserves nothing.
    with pytest.raises(LimitReached):
        in_app(app, lambda: _checkout(app, town_id, buyer_id, 10000), request=True)()
    assert counts(app)["reserved_yen"] == 60000


def test_ten_reconciles_at_once_refund_a_purchase_whose_issue_kept_failing_once(
    app, town_id, offer, buyer_id
):
    """The beat's reconcile may overlap itself (a slow refund call) or run in two workers: a
    purchase whose last issue failed is refunded once, with one audit row, and its monthly
    reservation given back once (each purchase is claimed under its row's lock before the
    refund; FOR UPDATE alone does nothing on SQLite and is let go at the first commit)."""
    from backend.chain.outbox.states import S, transition
    from backend.premium.purchases import MAX_ISSUE_ATTEMPTS

    with app.test_request_context():
        placed = _checkout(app, town_id, buyer_id, 1000)
        pid, purchase_id = placed.purchase.public_id, placed.purchase.id
        payload, headers = payment_provider().signed_event(pid, "paid", 1000)
    in_app(
        app,
        lambda: card_payment_service().handle_webhook(payment_provider(), payload, headers),
        request=True,
    )()
    with app.app_context():
        s = get_db().session
        p = s.get(PremiumPurchase, purchase_id)
        p.issue_attempts = MAX_ISSUE_ATTEMPTS  # the earlier attempts failed and were retried
        tx = s.get(OutboxTx, p.outbox_tx_id)
        tx.error = "RegionPointsProgrammeInactive(2)"
        transition(tx, S.FAILED, "estimate reverted: RegionPointsProgrammeInactive(2)")
        s.commit()
    assert counts(app)["reserved_yen"] == 2000

    results = n_at_once(app, 10, lambda _i: purchase_service().reconcile()["refunded"])
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 1, results
    with app.app_context():
        assert payment_provider().refunds == [f"pay_test_{pid}"]
        status = get_db().session.scalar(
            sa.select(PremiumPurchase.status).where(PremiumPurchase.id == purchase_id)
        )
    assert status == "refunded"
    assert actions(app, purchase_id) == ["payment.refund", "points.issue", "premium.sale"]
    assert counts(app)["reserved_yen"] == 0


def _daily_totals(app) -> dict[int, int]:
    """The paid programme's (2) daily totals of every day, by user (0: the town)."""
    from backend.points.models import PointsDailyTotal

    with app.app_context():
        rows = get_db().session.execute(
            sa.select(PointsDailyTotal.user_id, sa.func.sum(PointsDailyTotal.total))
            .where(PointsDailyTotal.programme_id == 2)
            .group_by(PointsDailyTotal.user_id)
        )
        return {int(u): int(t) for u, t in rows}


def test_ten_reconciles_at_once_give_the_programmes_daily_caps_back_once(
    app, town_id, offer, buyer_id
):
    """A purchase refunded because its issue kept failing issued nothing: the paid programme's
    daily totals it was counted against at payment (the town's and the person's) are given back
    with its monthly limits, once however many reconciles run at once; a purchase whose issue is
    on its way keeps counting."""
    from backend.chain.outbox.states import S, transition
    from backend.premium.purchases import MAX_ISSUE_ATTEMPTS

    paid: list[tuple[str, int]] = []
    for yen in (1000, 2000):
        with app.test_request_context():
            placed = _checkout(app, town_id, buyer_id, yen)
            pid = placed.purchase.public_id
            payload, headers = payment_provider().signed_event(pid, "paid", yen)
        in_app(
            app,
            lambda p=payload, h=headers: card_payment_service().handle_webhook(
                payment_provider(), p, h
            ),
            request=True,
        )()
        paid.append((pid, placed.purchase.id))
    # 1,000 yen -> 1,200 points, 2,000 yen -> 2,400 points (a 20 % premium).
    assert _daily_totals(app) == {0: 3600, buyer_id: 3600}
    (failing_pid, failing_id), _kept = paid
    with app.app_context():
        s = get_db().session
        p = s.get(PremiumPurchase, failing_id)
        p.issue_attempts = MAX_ISSUE_ATTEMPTS
        tx = s.get(OutboxTx, p.outbox_tx_id)
        tx.error = "RegionPointsProgrammeInactive(2)"
        transition(tx, S.FAILED, "estimate reverted: RegionPointsProgrammeInactive(2)")
        s.commit()

    results = n_at_once(app, 10, lambda _i: purchase_service().reconcile()["refunded"])
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 1, results
    assert _daily_totals(app) == {0: 2400, buyer_id: 2400}
    with app.app_context():
        refund = get_db().session.scalar(
            sa.select(AuditLog).where(
                AuditLog.action == "payment.refund", AuditLog.subject_id == str(failing_id)
            )
        )
        assert refund is not None and refund.details["daily_cap_released"] == 1200
        assert refund.details["public_id"] == failing_pid
    # Reconciling again gives nothing more back.
    in_app(app, lambda: purchase_service().reconcile())()
    assert _daily_totals(app) == {0: 2400, buyer_id: 2400}
