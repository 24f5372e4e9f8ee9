"""Daily caps of a programme (issue 13 §2), per person and per town per JST day, hold when ten
grants arrive at once, on PostgreSQL and on SQLite: the guarded counter UPDATE in the grant's
transaction lets exactly as many through as fit, the others get DailyCapReached with nothing
written (no grant, no outbox call, no audit row)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.points.errors import DailyCapReached
from backend.points.models import PointsDailyTotal, PointsGrant
from backend.points.programmes import WELCOME
from backend.points.services import points_service
from backend.points.town_settings import TownSettingsService, town_programme
from backend.regions.models import Town
from tests.concurrency import n_at_once


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: only the rows count here
    return app


def _caps(app, town_id: int, *, person: int | None, town: int | None) -> None:
    with app.app_context():
        s = get_db().session
        TownSettingsService(s).ensure_seeded(s.get(Town, town_id))
        row = town_programme(s, town_id, WELCOME.programme_id)
        row.cap_per_person_day, row.cap_per_town_day = person, town
        s.commit()


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        s = get_db().session
        return tuple(  # type: ignore[return-value]
            s.scalar(sa.select(sa.func.count()).select_from(m))
            for m in (PointsGrant, OutboxTx, AuditLog)
        )


def _ten_grants_at_once(app, user_id: int, town_id: int, n: int = 10) -> list[object]:
    def grant(i: int) -> int:
        s = get_db().session
        g = points_service().grant(
            s.get(User, user_id), s.get(Town, town_id), WELCOME, key=f"day-{i}"
        )
        return int(g.amount)

    return n_at_once(app, n, grant)


def _split(results: list[object]) -> tuple[list[object], list[object]]:
    granted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if not isinstance(r, int)]
    assert all(isinstance(r, DailyCapReached) for r in refused), refused
    return granted, refused


@pytest.mark.parametrize(("person", "town", "passes"), [(1500, None, 3), (None, 1000, 2)])
def test_ten_grants_at_once_pass_a_daily_cap_exactly_as_far_as_it_allows(
    app, town_id, user_id, person, town, passes
):
    _caps(app, town_id, person=person, town=town)
    granted, refused = _split(_ten_grants_at_once(app, user_id, town_id))
    assert granted == [500] * passes and len(refused) == 10 - passes
    assert _counts(app) == (passes, passes, passes)
    with app.app_context():
        rows = (
            get_db()
            .session.execute(sa.select(PointsDailyTotal.user_id, PointsDailyTotal.total))
            .all()
        )
        totals = {int(u): int(t) for u, t in rows}
    assert totals == {0: 500 * passes, user_id: 500 * passes}


def test_without_caps_every_grant_counts(app, town_id, user_id):
    _caps(app, town_id, person=None, town=None)
    granted, _ = _split(_ten_grants_at_once(app, user_id, town_id, n=4))
    assert granted == [500] * 4 and _counts(app) == (4, 4, 4)
