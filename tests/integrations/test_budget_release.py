"""A service's issuance whose chunk failed on chain issued nothing: its points go back to the
service's day and month budgets, once however many followers see the failure at once (issuing's
beat and the service reading its issuance, ten at once), on PostgreSQL and on SQLite, with one
audit row. An issuance that was confirmed keeps counting; one confirmed after it had failed (a
late PointsBatchIssued) counts again, once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.chain.outbox import outbox_service
from backend.chain.outbox.states import S, transition
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.integrations.issuances import api_issuing_service
from backend.integrations.models import ApiIssuance, ServiceAccount, ServiceBudgetUsage
from backend.issuing import tasks as issuing_tasks
from backend.issuing.models import IssuanceChunk
from backend.issuing.status import _set_rows
from tests.concurrency import n_at_once
from tests.integrations.conftest import THANKS, make_service


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _issue(app, key: str, item_key: str, amount: int) -> int:
    r = app.test_client().post(
        "/api/v1/issuances",
        json={
            "recipient": "customer@example.com",
            "amount": amount,
            "programme": THANKS,
            "reason": "Ride",
            "idempotency_key": item_key,
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 202, r.get_data(as_text=True)
    return int(r.get_json()["id"])


def _chunk_id(app, issuance_id: int) -> int:
    with app.app_context():
        s = get_db().session
        batch_id = s.get(ApiIssuance, issuance_id).batch_id
        return int(s.scalar(sa.select(IssuanceChunk.id).where(IssuanceChunk.batch_id == batch_id)))


def _used(app, service_id: int) -> dict[str, int]:
    with app.app_context():
        rows = get_db().session.execute(
            sa.select(ServiceBudgetUsage.period, ServiceBudgetUsage.used).where(
                ServiceBudgetUsage.service_account_id == service_id
            )
        )
        return {str(p): int(u) for p, u in rows}


def _audits(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(
            get_db().session.scalars(sa.select(AuditLog).where(AuditLog.action == action)).all()
        )


def _settle(app, chunk_id: int, status: str) -> None:
    """What issuing does when a chunk's rows settle (the indexer's confirmation)."""
    with app.app_context():
        s = get_db().session
        _set_rows(s, s.get(IssuanceChunk, chunk_id), status)
        s.commit()


def test_a_failed_chunk_gives_its_budget_back_once(app, world):
    svc = make_service(app, world.town_id, daily=1000, monthly=5000)
    failing = _issue(app, svc.key, "ride-0001", 300)
    kept = _issue(app, svc.key, "ride-0002", 100)
    assert _used(app, svc.id) == {"day": 400, "month": 400}
    with app.app_context():
        s = get_db().session
        chunk = s.get(IssuanceChunk, _chunk_id(app, failing))
        tx = s.get(OutboxTx, chunk.outbox_tx_id)
        tx.error = "execution reverted: EnforcedPause()"
        transition(tx, S.FAILED, "estimate reverted: EnforcedPause()")
        s.commit()

    def follow(i: int) -> object:
        if i % 2:  # issuing's beat
            return issuing_tasks.refresh_batches()
        s = get_db().session
        return api_issuing_service().get(s.get(ServiceAccount, svc.id), failing).status

    results = n_at_once(app, 10, follow)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert _used(app, svc.id) == {"day": 100, "month": 100}
    (released,) = _audits(app, "integrations.budget_released")
    assert int(released.amount) == 300 and released.subject_id == str(svc.id)
    assert released.details["issuances"] == [failing]
    assert "EnforcedPause" in released.details["error"]
    assert released.town_id == world.town_id
    left = app.test_client().get("/api/v1/service", headers={"Authorization": f"Bearer {svc.key}"})
    assert left.get_json()["daily_left"] == 900

    # Read again, the beat again: nothing more is given back.
    for _ in range(2):
        n_at_once(app, 2, follow)
    assert _used(app, svc.id) == {"day": 100, "month": 100}
    assert len(_audits(app, "integrations.budget_released")) == 1

    # The issuance that was confirmed keeps counting, however often it is settled.
    for _ in range(2):
        _settle(app, _chunk_id(app, kept), "confirmed")
    assert _used(app, svc.id) == {"day": 100, "month": 100}

    # The failed one is confirmed after all (a late PointsBatchIssued): counted again, once.
    for _ in range(2):
        _settle(app, _chunk_id(app, failing), "confirmed")
    assert _used(app, svc.id) == {"day": 400, "month": 400}
    (recounted,) = _audits(app, "integrations.budget_recounted")
    assert int(recounted.amount) == 300
    assert len(_audits(app, "integrations.budget_released")) == 1
