"""Ten appointments of one person to one role at once (as from ten tabs, each with its own
request key) make one membership and one audit row, on PostgreSQL and on SQLite: the UNIQUE
constraint on memberships decides, and every caller gets an answer (no 500)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import Membership, User
from backend.accounts.roles import STAFF
from backend.accounts.town_people import town_people_service
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.regions.models import Town
from tests.concurrency import n_at_once


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def test_ten_concurrent_appointments_make_one_membership(app, town):
    admin_id, newbie_id = town.user_id("admin"), town.user_id("newbie")
    n = 10

    def appoint(i: int) -> bool:
        s = get_db().session
        change = town_people_service().grant(
            s.get(User, admin_id),
            s.get(Town, town.town_id),
            "newbie@example.com",
            STAFF,
            key=f"tab-{i}",
        )
        return change.changed

    results = n_at_once(app, n, appoint)
    assert len(results) == n and all(isinstance(r, bool) for r in results), results
    assert results.count(True) == 1
    with app.app_context():
        s = get_db().session
        rows = s.scalar(
            sa.select(sa.func.count())
            .select_from(Membership)
            .where(Membership.user_id == newbie_id, Membership.role == STAFF)
        )
        grants = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "town.role.grant")
        )
    assert (rows, grants) == (1, 1)
