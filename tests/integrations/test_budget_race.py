"""Ten requests at once (issue 14 §2, "atomically"), over HTTP against the served app, on
PostgreSQL and on SQLite: ten issuances of 100 points with a daily budget of 500 issue exactly
500 (five 202, five 409 budget_exceeded, one issueBatch call each for the five); ten requests
with one idempotency key make one issuance that all ten answer; ten batch requests of two over
a budget of 1,000 issue exactly 1,000."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.integrations.models import ApiIssuance, ServiceBudgetUsage
from tests.concurrency import at_once
from tests.integrations.client import ServiceClient
from tests.integrations.conftest import THANKS, make_service


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _body(key: str, amount: int = 100) -> dict[str, object]:
    return {
        "recipient": "customer@example.com",
        "amount": amount,
        "programme": THANKS,
        "reason": "Gym visit",
        "idempotency_key": key,
    }


def _issued(app, service_id: int) -> tuple[int, int, int, int]:
    """(points in api_issuances, their count, issueBatch calls, audit rows) of a service."""
    with app.app_context():
        s = get_db().session
        total = s.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(ApiIssuance.amount), 0)).where(
                ApiIssuance.service_account_id == service_id
            )
        )
        count = s.scalar(
            sa.select(sa.func.count())
            .select_from(ApiIssuance)
            .where(ApiIssuance.service_account_id == service_id)
        )
        calls = s.scalars(sa.select(OutboxTx).where(OutboxTx.function == "issueBatch")).all()
        audits = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(
                AuditLog.actor == f"service:{service_id}",
                AuditLog.action == "points.api_issuance.create",
            )
        )
        return int(total), int(count or 0), sum(sum(c.args[1]) for c in calls), int(audits or 0)


def test_ten_at_once_over_budget_issue_exactly_the_budget(app, world, live_server):
    svc = make_service(app, world.town_id, daily=500)
    client = ServiceClient(live_server.url, svc.key)
    answers = at_once([lambda i=i: client.issue(**_body(f"visit-{i:04d}")) for i in range(10)])
    codes = sorted(a.status_code for a in answers)  # type: ignore[union-attr]
    assert codes == [202] * 5 + [409] * 5, [getattr(a, "text", a) for a in answers]
    refused = [a.json()["error"]["code"] for a in answers if a.status_code == 409]  # type: ignore[union-attr]
    assert refused == ["budget_exceeded"] * 5
    assert _issued(app, svc.id) == (500, 5, 500, 5)
    with app.app_context():
        (day,) = (
            get_db()
            .session.scalars(
                sa.select(ServiceBudgetUsage).where(ServiceBudgetUsage.period == "day")
            )
            .all()
        )
        assert int(day.used) == 500


def test_ten_at_once_with_one_key_make_one_issuance(app, world, live_server):
    svc = make_service(app, world.town_id, daily=5000)
    client = ServiceClient(live_server.url, svc.key)
    answers = at_once([lambda: client.issue(**_body("visit-same")) for _ in range(10)])
    assert [a.status_code for a in answers] == [202] * 10, [getattr(a, "text", a) for a in answers]  # type: ignore[union-attr]
    assert len({a.json()["id"] for a in answers}) == 1  # type: ignore[union-attr]
    assert _issued(app, svc.id) == (100, 1, 100, 1)
    assert client.service().json()["daily_left"] == 4900  # the losers' budget was given back


def test_ten_batches_at_once_over_budget(app, world, live_server):
    svc = make_service(app, world.town_id, daily=1000)
    client = ServiceClient(live_server.url, svc.key)
    answers = at_once(
        [
            lambda i=i: client.batch([_body(f"b{i}-0001", 150), _body(f"b{i}-0002", 100)])
            for i in range(10)
        ]
    )
    codes = sorted(a.status_code for a in answers)  # type: ignore[union-attr]
    assert codes == [202] * 4 + [409] * 6, [getattr(a, "text", a) for a in answers]
    assert _issued(app, svc.id) == (1000, 8, 1000, 8)
