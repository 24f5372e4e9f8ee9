"""A failed issue of a resident pass, seen many times at once (the beat task, the person's
page, the staff's list), becomes "failed" once with one audit row; verifying the person again,
ten tabs at once, queues one new issue under a new outbox key (the failed call is never sent
again). PostgreSQL and SQLite: the conditional UPDATEs decide (failures.py, services.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.regions.models import Town
from backend.residency.models import Resident
from backend.residency.services import residency_service
from tests.concurrency import n_at_once
from tests.residency.conftest import (
    ERROR,
    ID,
    audits,
    fail_call,
    issue_calls,
    make_staff,
    resident,
    signup,
)


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def test_a_failed_issue_is_failed_once_and_verifying_again_issues_one_pass(app, town):
    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    _, person_id, _ = signup(app, "hanako@example.com")

    def verify(_i: int = 0) -> int:
        s = get_db().session
        row = residency_service().verify_in_person(
            s.get(User, staff_id), s.get(Town, town.id), s.get(User, person_id), saw_id="1", **ID
        )
        return row.id

    with app.app_context():
        rid = verify()
    ((first_tx, first_key, _),) = issue_calls(app)
    fail_call(app, first_tx)

    # The failure seen ten times at once, by the person's page and the staff's list.
    def see(i: int) -> str:
        s = get_db().session
        svc = residency_service()
        if i % 2:
            rows = svc.residents(s.get(User, staff_id), s.get(Town, town.id))
        else:
            rows = svc.my_passes(s.get(User, person_id))
        return next(r.state for r in rows if r.id == rid)

    results = n_at_once(app, 10, see)
    assert results == ["failed"] * 10, results
    assert audits(app, "residency.issue_failed") == 1
    with app.app_context():
        from backend.residency.tasks import fail_lost_passes

        assert fail_lost_passes() == 0  # seen again by the beat: nothing more
    assert audits(app, "residency.issue_failed") == 1
    row = resident(app, person_id)
    assert (row["state"], row["generation"], row["issue_tx_id"]) == ("failed", 1, first_tx)

    # Staff verify the person again, ten tabs at once: one new call, one new audit row.
    results = n_at_once(app, 10, verify)
    assert results == [rid] * 10, results
    calls = issue_calls(app)
    assert len(calls) == 2, calls
    assert calls[0] == (first_tx, first_key, "failed")  # the failed call is not sent again
    assert calls[1][1] == f"{first_key}:2" and calls[1][2] == "queued"
    assert audits(app, "residency.issue") == 2
    row = resident(app, person_id)
    assert (row["state"], row["generation"], row["issue_tx_id"]) == ("issuing", 2, calls[1][0])


def test_the_beat_fails_a_lost_issue_when_nobody_looks(app, town):
    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    _, person_id, _ = signup(app, "taro@example.com")
    with app.app_context():
        s = get_db().session
        residency_service().verify_in_person(
            s.get(User, staff_id), s.get(Town, town.id), s.get(User, person_id), saw_id="1", **ID
        )
    ((tx_id, _, _),) = issue_calls(app)
    fail_call(app, tx_id)

    from backend.residency.tasks import fail_lost_passes

    def beat(_i: int) -> int:
        return fail_lost_passes()

    results = n_at_once(app, 5, beat)
    assert all(isinstance(r, int) for r in results), results
    assert resident(app, person_id)["state"] == "failed"
    assert audits(app, "residency.issue_failed") == 1
    with app.app_context():
        (audit,) = (
            get_db()
            .session.scalars(sa.select(AuditLog).where(AuditLog.action == "residency.issue_failed"))
            .all()
        )
        assert audit.actor == "system:outbox" and audit.town_id == town.id
        assert audit.details["tx_state"] == "failed" and audit.details["error"] == ERROR


def test_a_failed_issue_that_is_mined_after_all_is_issued(app, town):
    """The chain is the truth: PassIssued of a row judged failed (a reorg's replay) issues it."""
    from backend.chain.indexer.events import ChainEvent, EventSubject
    from backend.residency.handlers import _issued

    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    _, person_id, _ = signup(app, "saburo@example.com")
    with app.app_context():
        s = get_db().session
        row = residency_service().verify_in_person(
            s.get(User, staff_id), s.get(Town, town.id), s.get(User, person_id), saw_id="1", **ID
        )
        fail_call(app, row.issue_tx_id)
        s.expire_all()
        assert (
            residency_service().resident_of(s.get(Town, town.id), s.get(User, person_id)).state
            == "failed"
        )
        ev = ChainEvent(
            chain_id=1, contract_key="k", contract_address="0x" + "0" * 40,
            contract_name="ResidentPass", event_name="PassIssued",
            args={"tokenId": 5, "personId": row.identity_hash}, block_number=1,
            block_hash="0x" + "1" * 64, tx_hash="0x" + "2" * 64, log_index=0,
            subject=EventSubject("resident", row.id),
        )  # fmt: skip
        _issued(s, [ev])
        s.commit()
        assert (s.get(Resident, row.id).state, s.get(Resident, row.id).token_id) == ("issued", 5)


def test_a_pass_whose_call_cannot_be_queued_leaves_no_row_behind(app, town, monkeypatch):
    """The row and its outbox call commit together, on SQLite too: when queueing the call fails
    (here the outbox refuses), nothing is left "issuing" without a call, neither a new row nor
    a failed one verified again. (On SQLite a SAVEPOINT opened before the transaction's first
    write commits when it is released, so the row's write must not be the savepoint's.)"""
    from backend.chain.outbox.service import OutboxService
    from backend.core.errors import AppError

    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    _, person_id, _ = signup(app, "hanako@example.com")
    real = OutboxService.enqueue

    def refuse(*_a, **_k):
        raise AppError("the outbox is not taking calls")

    def verify() -> None:
        s = get_db().session
        try:
            residency_service().verify_in_person(
                s.get(User, staff_id), s.get(Town, town.id), s.get(User, person_id),
                saw_id="1", **ID,
            )  # fmt: skip
        except AppError:
            s.rollback()  # as the page does
            raise

    monkeypatch.setattr(OutboxService, "enqueue", refuse)
    with app.app_context(), pytest.raises(AppError):
        verify()
    assert resident(app, person_id) is None
    monkeypatch.setattr(OutboxService, "enqueue", real)
    with app.app_context():
        verify()
    ((tx_id, _, _),) = issue_calls(app)
    fail_call(app, tx_id)
    monkeypatch.setattr(OutboxService, "enqueue", refuse)
    with app.app_context(), pytest.raises(AppError):
        residency_service().my_passes(get_db().session.get(User, person_id))
        verify()
    row = resident(app, person_id)
    assert (row["state"], row["generation"], row["issue_tx_id"]) == ("failed", 1, tx_id)
