"""The town's four-eyes amount for issuing holds for what one member of staff issues alone in a
JST day, not only per issuance: issuances each under it, or a batch split in two, needed nobody
else, so one person could issue any amount alone. A confirm that would take the person's day
past the amount waits for a second member of staff (as one issuance above it does); what a
second person approved does not count; confirms at once never pass the amount together, on
PostgreSQL and SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.issuing.services import issuing_service
from backend.merchants.models import TownMoneySettings
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.issuing.conftest import SECOND_STAFF


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: only the rows count here
    return app


@pytest.fixture
def four_eyes_100(app, world):
    with app.app_context():
        get_db().session.add(TownMoneySettings(town_id=world.town_id, issue_four_eyes_amount=100))
        get_db().session.commit()


def _preview(app, world, key: str, amount: int, who: str) -> int:  # type: ignore[no-untyped-def]
    """A batch of `amount` points to one person, previewed by `who`."""
    with app.test_request_context():
        s = get_db().session
        staff = s.scalar(sa.select(User).where(User.email == who))
        return (
            issuing_service()
            .preview(
                staff,
                s.get(Town, world.town_id),
                [{"recipient": world.customer, "amount": amount}],
                programme_id=3,
                reason="Festival volunteers",
                key=key,
            )
            .id
        )


def _step(app, who: str, batch_id: int, step: str) -> str:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        svc = issuing_service()
        actor = svc.session.scalar(sa.select(User).where(User.email == who))
        return getattr(svc, step)(actor, batch_id).state


def test_issuances_under_the_amount_wait_once_the_persons_day_passes_it(
    app, world, second_staff, four_eyes_100
):
    first = _preview(app, world, "day-one", 60, world.staff)
    assert _step(app, world.staff, first, "confirm") == "confirmed"
    second = _preview(app, world, "day-two", 60, world.staff)  # 60 + 60 > 100
    assert _step(app, world.staff, second, "confirm") == "awaiting_approval"
    with app.app_context():
        audit = get_db().session.scalar(
            sa.select(AuditLog).where(
                AuditLog.action == "points.issuance.confirm", AuditLog.subject_id == str(second)
            )
        )
        assert audit.details["state"] == "awaiting_approval"
        assert audit.details["over_the_day_alone"] == 100
    # The same person may not approve it; a second member of staff does.
    assert _step(app, SECOND_STAFF, second, "approve") == "approved"
    # What the second person approved does not count towards anyone's day: 40 more fits.
    third = _preview(app, world, "day-three", 40, world.staff)
    assert _step(app, world.staff, third, "confirm") == "confirmed"
    # Another member of staff has a day of their own.
    other = _preview(app, world, "day-four", 90, SECOND_STAFF)
    assert _step(app, SECOND_STAFF, other, "confirm") == "confirmed"


def test_ten_confirms_of_ten_issuances_at_once_pass_the_amount_not_together(
    app, world, four_eyes_100
):
    ids = [_preview(app, world, f"at-once-{i}", 30, world.staff) for i in range(10)]

    def confirm(i: int) -> str:
        svc = issuing_service()
        actor = svc.session.scalar(sa.select(User).where(User.email == world.staff))
        return svc.confirm(actor, ids[i]).state

    states = n_at_once(app, 10, confirm, request=True)
    assert sorted(states) == ["awaiting_approval"] * 7 + ["confirmed"] * 3, states
