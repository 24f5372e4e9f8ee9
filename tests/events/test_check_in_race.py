"""Ten check-ins of one person to one event at once, half by the event's QR and half by venue
staff scanning their printed card, make one check-in, one points grant, one outbox call and
one "points.issue" audit row, on PostgreSQL and on SQLite: the UNIQUE constraint of
event_check_ins decides, every loser is told "already checked in" (409), nobody gets a 500."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.events.errors import AlreadyCheckedIn
from backend.events.services import event_service
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.events.conftest import check_in_token, counts, make_event


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # only the rows count here
    return app


def test_ten_check_ins_at_once_give_points_once(app, town):
    event_id = make_event(app, town.town_id, points=200)
    token = check_in_token(app, town.town_id, event_id)
    customer_id, verifier_id = town.user_id("customer"), town.user_id("verifier")
    with app.app_context():  # the customer's printed card (staff issue it in the console)
        s = get_db().session
        card = merchant_service().issue_card(
            s.get(User, town.user_id("staff")),
            s.get(Town, town.town_id),
            s.get(User, customer_id),
            "482913",
        )
        card_code = card.card_code
        s.commit()
    before = counts(app)
    n = 10

    def check_in(i: int) -> int:
        s = get_db().session
        svc = event_service()
        t = s.get(Town, town.town_id)
        if i % 2:
            row = svc.check_in_self(s.get(User, customer_id), t, event_id, token)
        else:
            row = svc.check_in_by_staff(s.get(User, verifier_id), t, event_id, card_code)
        return row.id

    results = n_at_once(app, n, check_in)
    assert len(results) == n, results
    won = [r for r in results if isinstance(r, int)]
    lost = [r for r in results if not isinstance(r, int)]
    assert len(won) == 1 and all(isinstance(e, AlreadyCheckedIn) for e in lost), results
    after = counts(app)
    assert {k: after[k] - before[k] for k in after} == {
        "events": 0,
        "event_check_ins": 1,
        "points_grants": 1,
        "outbox_txs": 1,
        "audit_log": 1,
    }
    with app.app_context():
        (audit,) = get_db().session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "points.issue")
        )
        assert audit.subject_id == str(customer_id) and int(audit.amount) == 200
