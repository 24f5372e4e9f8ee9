"""Ten members of a town's staff change its yen per point at once, on PostgreSQL and SQLite: the
changes go one after another (the town's first rate row is locked, backend/core/upsert.py
lock_row), so one change at most waits for next month, it is the one the last audit row names,
and the audit rows chain (each one's "before" is the previous one's "after"). Nobody gets a 5xx
or a database error."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from flask import Flask

from backend.accounts.models import User
from backend.accounts.roles import STAFF, grant_town_role
from backend.chain.outbox import outbox_service
from backend.chain.registry import Deployments
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.partners.models import FROM_THE_START, PointRateVersion
from backend.partners.services import partner_service
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.merchants.conftest import _signup
from tests.partners.conftest import _town

N = 10


@pytest.fixture
def app(make_app: Callable[..., Flask], deployed: Deployments, any_db_url: str) -> Flask:
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


@pytest.fixture
def staff(app: Flask, deployed: Deployments) -> tuple[int, list[int]]:
    """Tōyako and N members of its staff: (town id, their ids)."""
    with app.app_context():
        toya = _town("toyako", "洞爺湖町", "Lake Toya", deployed)
        people = [_signup(app, f"staff{i}@toyako.example") for i in range(N)]
        for user in people:
            grant_town_role(user, toya.id, STAFF)
        get_db().session.commit()
        return toya.id, [u.id for u in people]


def _set(town_id: int, user_id: int, value: int) -> str:
    s = get_db().session
    partner_service().set_rate(s.get(User, user_id), s.get(Town, town_id), str(value))
    return "ok"


def _state(app: Flask, town_id: int) -> tuple[str, list[tuple[str, int]], list[dict]]:
    """This month, the town's versions after its first, and its rate audit rows in order."""
    with app.app_context():
        s = get_db().session
        month = partner_service().current_month()
        versions = s.execute(
            sa.select(PointRateVersion.effective_from, PointRateVersion.yen_per_point)
            .where(PointRateVersion.town_id == town_id)
            .order_by(PointRateVersion.effective_from)
        ).all()
        audits = [
            a.details
            for a in s.scalars(
                sa.select(AuditLog).where(AuditLog.action == "clearing.rate").order_by(AuditLog.id)
            )
        ]
        s.commit()
    assert versions[0] == (FROM_THE_START, 1)  # made once, by the first change
    return month, [tuple(v) for v in versions[1:]], audits


def _assert_chained(audits: list[dict], last: int | None) -> None:
    """Each audit row is a real change made on what the previous one left."""
    before = 1
    for a in audits:
        assert a["before"] == before and a["after"] != before, audits
        before = a["after"]
    assert before == (last if last is not None else 1), audits


def test_ten_different_rates_at_once_leave_one_waiting(app, staff):
    town_id, people = staff
    answers = n_at_once(app, N, lambda i: _set(town_id, people[i], 2 + i))
    assert answers == ["ok"] * N, answers
    month, waiting, audits = _state(app, town_id)
    assert len(waiting) == 1 and waiting[0][0] > month, waiting
    assert len(audits) == N  # ten different values: ten changes, none lost
    _assert_chained(audits, waiting[0][1])


def test_ten_changes_and_withdrawals_at_once_stay_consistent(app, staff):
    """Some set the rate in force (withdrawing what waits), some the same value twice (no
    change the second time): whatever the order, the state and its audit rows agree."""
    town_id, people = staff
    values = [1 if i % 4 == 0 else 2 + i % 3 for i in range(N)]
    answers = n_at_once(app, N, lambda i: _set(town_id, people[i], values[i]))
    assert answers == ["ok"] * N, answers
    month, waiting, audits = _state(app, town_id)
    assert len(waiting) <= 1 and all(v[0] > month for v in waiting), waiting
    assert 1 <= len(audits) <= N
    _assert_chained(audits, waiting[0][1] if waiting else None)
