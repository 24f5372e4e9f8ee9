"""Ten concurrent issues for one person (ten staff tabs, or a tab and the digital-ID route at
once) make one resident row, one outbox call and one audit row, on PostgreSQL and on SQLite:
the UNIQUE constraints decide, and every caller gets the same row (no 500)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.accounts.models import EXTERNAL, Address, User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.models import AuditLog
from backend.regions.models import Town
from backend.residency.models import Resident
from backend.residency.services import residency_service
from tests.concurrency import n_at_once
from tests.residency.conftest import ID, make_staff, signup


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False
    return app


def _people(app, n: int) -> list[int]:
    """`n` accounts, each with an own (external) wallet: made directly, not through sign-up's
    rate limit."""
    with app.app_context():
        s = get_db().session
        ids = []
        for i in range(n):
            user = User(email=f"p{i}@example.com")
            s.add(user)
            s.flush()
            s.add(Address(user_id=user.id, address=f"0x{i + 1:040x}", kind=EXTERNAL))
            ids.append(user.id)
        s.commit()
        return ids


def test_ten_concurrent_issues_make_one_pass(app, town):
    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    _, person_id, _ = signup(app, "hanako@example.com")

    def issue(_i: int) -> int:
        s = get_db().session
        row = residency_service().verify_in_person(
            s.get(User, staff_id), s.get(Town, town.id), s.get(User, person_id), saw_id="1", **ID
        )
        return row.id

    results = n_at_once(app, 10, issue)
    assert all(isinstance(r, int) for r in results), [r for r in results if not isinstance(r, int)]
    assert len(set(results)) == 1
    with app.app_context():
        s = get_db().session
        rows = s.scalar(sa.select(sa.func.count()).select_from(Resident))
        calls = s.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxTx)
            .where(OutboxTx.function == "issue", OutboxTx.idempotency_key.like("resident-pass:%"))
        )
        audits = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "residency.issue")
        )
    assert (rows, calls, audits) == (1, 1, 1)


def test_ten_accounts_of_one_person_get_one_pass(app, town):
    """The same identity on ten accounts at once: one is issued, nine are refused (409)."""
    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    people = _people(app, 10)

    def issue(i: int) -> int:
        s = get_db().session
        row = residency_service().verify_in_person(
            s.get(User, staff_id), s.get(Town, town.id), s.get(User, people[i]), saw_id="1", **ID
        )
        return row.id

    results = n_at_once(app, 10, issue)
    refused = [getattr(r, "status", r) for r in results if isinstance(r, Exception)]
    assert refused == [409] * 9 and len([r for r in results if isinstance(r, int)]) == 1, results
    with app.app_context():
        s = get_db().session
        assert s.scalar(sa.select(sa.func.count()).select_from(Resident)) == 1
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "residency.issue")
            )
            == 1
        )


def test_ten_concurrent_revokes_queue_one(app, town):
    """Ten staff tabs revoke one issued pass at once: one revoke call, one audit row."""
    _, staff_id, _ = signup(app, "registry@example.com")
    make_staff(app, town, staff_id)
    (person_id,) = _people(app, 1)
    with app.app_context():
        s = get_db().session
        row = residency_service().verify_in_person(
            s.get(User, staff_id), s.get(Town, town.id), s.get(User, person_id), saw_id="1", **ID
        )
        row.state, row.token_id = "issued", 7  # as the indexer sets it from PassIssued
        s.commit()
        rid = row.id

    def revoke(_i: int) -> str:
        s = get_db().session
        done = residency_service().revoke(
            s.get(User, staff_id), s.get(Town, town.id), rid, "Moved away"
        )
        return done.state

    results = n_at_once(app, 10, revoke)
    assert results == ["revoking"] * 10, results
    with app.app_context():
        s = get_db().session
        calls = s.scalar(
            sa.select(sa.func.count()).select_from(OutboxTx).where(OutboxTx.function == "revoke")
        )
        audits = s.scalar(
            sa.select(sa.func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "residency.revoke")
        )
    assert (calls, audits) == (1, 1)
