"""Ten confirms of one batch at once (ten clicks, or ten tabs) queue one set of outbox calls,
on PostgreSQL and on SQLite: one conditional UPDATE previewed -> confirmed has one winner, which
queues the chunks in its transaction; every caller gets the batch. Ten approvals at once by
other staff likewise."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.issuing import services as issuing
from backend.issuing.models import IssuanceChunk
from backend.issuing.services import issuing_service
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.issuing.conftest import SECOND_STAFF


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: only the rows count here
    return app


def _at_once(app, n: int, step) -> list[object]:  # type: ignore[no-untyped-def]
    return n_at_once(app, n, lambda _i: step(issuing_service()).state, request=True)


def _counts(app) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        s = get_db().session
        calls = s.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxTx)
            .where(OutboxTx.function == "issueBatch")
        )
        chunks = s.scalar(sa.select(sa.func.count()).select_from(IssuanceChunk))
        confirms, approves = (
            s.scalar(sa.select(sa.func.count()).select_from(AuditLog).where(AuditLog.action == a))
            for a in ("points.issuance.confirm", "points.issuance.approve")
        )
        return int(calls or 0), int(chunks or 0), int(confirms or 0), int(approves or 0)


def _preview(app, world, key: str, amount: int) -> int:  # type: ignore[no-untyped-def]
    with app.test_request_context():
        s = get_db().session
        staff = s.scalar(sa.select(User).where(User.email == world.staff))
        batch = issuing_service().preview(
            staff,
            s.get(Town, world.town_id),
            [
                {"recipient": e, "amount": amount}
                for e in (world.customer, world.neighbour, world.clerk)
            ],
            programme_id=3,
            reason="Festival volunteers",
            key=key,
        )
        return batch.id


def test_ten_confirms_at_once_queue_one_set_of_calls(app, world, monkeypatch):
    monkeypatch.setattr(issuing, "CHUNK_SIZE", 2)  # three recipients: two chunks
    batch_id = _preview(app, world, "race-confirm", 10)

    def confirm(svc):  # type: ignore[no-untyped-def]
        s = svc.session
        return svc.confirm(s.scalar(sa.select(User).where(User.email == world.staff)), batch_id)

    results = _at_once(app, 10, confirm)
    assert results == ["confirmed"] * 10, results
    assert _counts(app) == (2, 2, 1, 0)


def test_ten_approvals_at_once_queue_one_set_of_calls(app, world, second_staff):
    with app.app_context():
        from backend.merchants.models import TownMoneySettings

        get_db().session.add(TownMoneySettings(town_id=world.town_id, issue_four_eyes_amount=100))
        get_db().session.commit()
    batch_id = _preview(app, world, "race-approve", 50)

    def confirm(svc):  # type: ignore[no-untyped-def]
        s = svc.session
        return svc.confirm(s.scalar(sa.select(User).where(User.email == world.staff)), batch_id)

    assert _at_once(app, 1, confirm) == ["awaiting_approval"]

    def approve(svc):  # type: ignore[no-untyped-def]
        s = svc.session
        return svc.approve(s.scalar(sa.select(User).where(User.email == SECOND_STAFF)), batch_id)

    results = _at_once(app, 10, approve)
    assert results == ["approved"] * 10, results
    assert _counts(app) == (1, 1, 1, 1)
