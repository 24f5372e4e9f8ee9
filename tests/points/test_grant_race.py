"""PointsService.grant (every kind the platform grants by itself, welcome among them) issues
once per user, town, programme and grant key when the same grant arrives many times at once,
on PostgreSQL and on SQLite: the UNIQUE constraint of points_grants decides, the losers get the
winner's grant, and exactly one outbox call and one audit row exist. A bad amount changes
nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.errors import InvalidAmount
from backend.points.models import PointsGrant
from backend.points.programmes import WELCOME
from backend.points.services import points_service
from backend.regions.models import Town
from tests.concurrency import n_at_once


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: only the rows count here
    return app


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        return tuple(  # type: ignore[return-value]
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (PointsGrant, OutboxTx, AuditLog)
        )


def _grant_at_once(app, user_id: int, town_id: int, key: str, n: int = 10) -> list[object]:
    def grant(_i: int) -> int:
        s = get_db().session
        return (
            points_service().grant(s.get(User, user_id), s.get(Town, town_id), WELCOME, key=key).id
        )

    return n_at_once(app, n, grant)


def test_ten_identical_grants_at_once_issue_once(app, town_id, user_id):
    results = _grant_at_once(app, user_id, town_id, key="")
    assert len(results) == 10 and all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1  # every caller got the one grant
    assert _counts(app) == (1, 1, 1)
    # Another grant key is another grant (e.g. one per event), again once under a race.
    again = _grant_at_once(app, user_id, town_id, key="event-7")
    assert len(set(again)) == 1 and all(isinstance(r, int) for r in again), again
    assert _counts(app) == (2, 2, 2)


@pytest.mark.parametrize("amount", [-1, 0, 2**256])
def test_a_bad_amount_is_refused_and_changes_nothing(app, town_id, user_id, amount):
    with app.app_context():
        s = get_db().session
        with pytest.raises(InvalidAmount):
            points_service().grant(
                s.get(User, user_id), s.get(Town, town_id), WELCOME, amount=amount
            )
    assert _counts(app) == (0, 0, 0)
