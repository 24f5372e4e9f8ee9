"""Family proxies at once (issue 15 §1, ADR 0023), on PostgreSQL AND SQLite:

- ten payments of ten different charges by one proxy, released together, never pass the link's
  daily limit: exactly as many as fit are queued (one transfer and one audit row each), the
  others get 409 proxy_limit_reached, and the day's counter holds the limit;
- one charge paid by the proxy from ten sessions at once pays once;
- staff ending the link while nine payments run: each payment is either queued before the end
  or refused with 403 proxy_ended, and the counters agree with what was queued.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.chain.registry import Deployments
from backend.core.db import get_db, utcnow
from backend.core.models import AuditLog
from backend.merchants import proxies, proxy_payments
from backend.merchants.models import Charge, ProxyLink, SpendCounter
from backend.merchants.services import merchant_service
from tests.concurrency import n_at_once
from tests.merchants.proxy_helpers import give_points, link, qr_charge, register_resident

N = 10


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    app.extensions["limiter"].enabled = False  # the database's guards must hold by themselves
    return app


def _pay(email: str, link_id: int, code: str) -> Charge:
    """The proxy's payment, in the caller's app context (one per thread: n_at_once)."""
    proxy = get_db().session.scalar(sa.select(User).where(User.email == email))
    return proxy_payments.pay_for(merchant_service(), proxy, link_id, code)


def _counts(app: Flask) -> tuple[int, int, int]:
    """(transfers queued, proxy payment audit rows, the day's counter)."""
    with app.app_context():
        s = get_db().session
        transfers = s.scalar(
            sa.select(sa.func.count()).select_from(OutboxTx).where(OutboxTx.function == "transfer")
        )
        audits = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "points.proxy_payment")
        )
        counter = s.scalar(sa.select(sa.func.coalesce(sa.func.sum(SpendCounter.amount), 0)))
        return int(transfers or 0), int(audits or 0), int(counter or 0)


def _describe(answers: list[object]) -> list[str]:
    return [repr(a) if isinstance(a, Exception) else f"charge {a.id} {a.status}" for a in answers]


def test_ten_payments_at_once_never_pass_the_daily_limit(app, world):
    card_id, resident_id = register_resident(app, world)
    link_id = link(app, world, card_id, world.neighbour, per_payment=100, daily=500)
    give_points(app, world, resident_id, 10_000)
    codes = [qr_charge(world, 100, f"race-proxy-{i}") for i in range(N)]
    answers = n_at_once(app, N, lambda i: _pay(world.neighbour, link_id, codes[i]))
    paid = [a for a in answers if isinstance(a, Charge)]
    refused = [a for a in answers if not isinstance(a, Charge)]
    assert len(paid) == 5, _describe(answers)
    assert all(isinstance(a, proxies.ProxyLimitReached) for a in refused), _describe(answers)
    assert all(a.status == 409 for a in refused)  # type: ignore[union-attr]
    assert _counts(app) == (5, 5, 500)
    with app.app_context():
        states = sorted(
            get_db().session.scalars(sa.select(Charge.status).where(Charge.code.in_(codes)))
        )
    assert states == ["paying"] * 5 + ["pending"] * 5


def test_one_charge_paid_from_ten_sessions_at_once_pays_once(app, world):
    card_id, resident_id = register_resident(app, world)
    link_id = link(app, world, card_id, world.neighbour, per_payment=300, daily=3000)
    give_points(app, world, resident_id, 1000)
    code = qr_charge(world, 250, "race-proxy-one")
    answers = n_at_once(app, N, lambda _i: _pay(world.neighbour, link_id, code))
    assert all(isinstance(a, Charge) or (getattr(a, "status", 500) == 409) for a in answers), (
        _describe(answers)
    )
    assert any(isinstance(a, Charge) for a in answers)
    assert _counts(app) == (1, 1, 250)


def test_ending_the_link_while_payments_run_stops_them(app, world):
    card_id, resident_id = register_resident(app, world)
    link_id = link(app, world, card_id, world.neighbour, per_payment=100, daily=10_000)
    give_points(app, world, resident_id, 10_000)
    codes = [qr_charge(world, 100, f"race-end-{i}") for i in range(N - 1)]

    def call(i: int) -> object:
        if i == N - 1:
            with app.app_context():
                staff = world.user(world.staff)
                return proxies.end_link(get_db().session(), staff, world.town(), link_id, utcnow())
        return _pay(world.neighbour, link_id, codes[i])

    answers = n_at_once(app, N, call)
    assert isinstance(answers[-1], ProxyLink), _describe(answers)
    payments = answers[:-1]
    assert all(isinstance(a, (Charge, proxies.ProxyEnded)) for a in payments), _describe(payments)
    paid = sum(isinstance(a, Charge) for a in payments)
    assert _counts(app) == (paid, paid, 100 * paid)
    with app.app_context():
        ended = get_db().session.get(ProxyLink, link_id)
        assert ended is not None and ended.ended_at is not None
    # Once ended, the next payment is refused and nothing changes.
    before = _counts(app)
    late = qr_charge(world, 100, "race-end-late")
    with app.app_context(), pytest.raises(proxies.ProxyEnded):
        _pay(world.neighbour, link_id, late)
    assert _counts(app) == before
