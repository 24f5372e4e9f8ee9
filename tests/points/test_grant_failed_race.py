"""A points grant whose issue call fails on chain (welcome points, an event's prize) is not left
"pending" for ever, on PostgreSQL and on SQLite:

- seen failed by ten followers at once (the beat task, pages reading grant states, staff's
  list), it becomes "failed" once, with one audit row "points.issue_failed", and gives its
  reservation of the programme's daily cap back once;
- ten retries at once by town staff (one grant, or all of them) queue one new issue call under
  a new outbox key; the failed call is never sent again;
- a retry never follows a call the chain may still mine or did mine;
- a retry that the day's cap or a closed programme refuses writes nothing.

The outbox's failure is made as the outbox makes it when an estimate reverts: the queued row
moves to "failed" with the decoded error (backend/chain/outbox/states.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backend.accounts.models import User
from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxAttempt, OutboxTx
from backend.core.db import get_db
from backend.core.times import JST
from backend.points.errors import DailyCapReached, ProgrammeInactive
from backend.points.models import PointsGrant
from backend.points.services import points_service
from backend.points.town_settings import town_programme
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.points.failed_grants_helpers import (
    ERROR,
    audits,
    caps,
    counts,
    fail_call,
    grant,
    grant_row,
    issue_calls,
    staff,
    totals,
)


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: the rows are the subject
    return app


def _today() -> dt.date:
    return dt.datetime.now(JST).date()


def test_a_failure_seen_ten_times_at_once_is_recorded_once_and_gives_the_cap_back(
    app, town_id, user_id
):
    caps(app, town_id, person=500)  # one welcome grant's worth a day
    gid, tx_id = grant(app, user_id, town_id, key="first")
    assert totals(app) == {0: 500, user_id: 500}
    fail_call(app, tx_id)

    def follow(_i: int) -> str:  # ten pages showing the grant's state at once
        return points_service().grant_states([gid])[gid]

    results = n_at_once(app, 10, follow)
    assert results == ["failed"] * 10, results
    (audit,) = audits(app, "points.issue_failed")
    assert (audit.actor, audit.subject_type, audit.subject_id) == (
        "system:outbox",
        "user",
        str(user_id),
    )
    assert int(audit.amount) == 500 and audit.town_id == town_id
    assert audit.details["grant_id"] == gid and audit.details["outbox_tx_id"] == tx_id
    assert (audit.details["tx_state"], audit.details["error"]) == ("failed", ERROR)
    row = grant_row(app, gid)
    assert (row["status"], row["reserved_day"], row["attempts"]) == ("failed", None, 1)
    assert totals(app) == {0: 0, user_id: 0}  # given back once, not ten times
    # The day's cap is free again: another grant of the day passes it.
    grant(app, user_id, town_id, key="second")
    assert totals(app) == {0: 500, user_id: 500}
    with app.app_context():
        from backend.points.tasks import fail_lost_grants

        assert fail_lost_grants() == 0  # seen again later: nothing more
    assert len(audits(app, "points.issue_failed")) == 1


def test_the_beat_records_a_failed_grant_when_nobody_looks(app, town_id, user_id):
    from backend.points.tasks import fail_lost_grants

    gid, tx_id = grant(app, user_id, town_id)
    fail_call(app, tx_id)
    results = n_at_once(app, 5, lambda _i: fail_lost_grants())
    assert sorted(results) == [0, 0, 0, 0, 1], results
    assert grant_row(app, gid)["status"] == "failed"
    assert len(audits(app, "points.issue_failed")) == 1
    assert totals(app) == {0: 0, user_id: 0}


def test_ten_retries_at_once_send_the_grant_once_under_a_new_key(app, town_id, user_id):
    from backend.points.services import grant_retries

    staff_id = staff(app, town_id)
    caps(app, town_id, person=500)
    gid, first = grant(app, user_id, town_id)
    fail_call(app, first)

    def retry(i: int) -> int:
        s = get_db().session
        who, town = s.get(User, staff_id), s.get(Town, town_id)
        if i % 2:
            return int(grant_retries().retry(who, town, gid)[1])
        return len(grant_retries().retry_all(who, town).queued)

    results = n_at_once(app, 10, retry)
    assert sorted(results) == [0] * 9 + [1], results
    calls = issue_calls(app)
    assert len(calls) == 2, calls
    assert calls[0] == (first, f"points.welcome:{town_id}:{user_id}:1", "failed")
    assert calls[1][1:] == (f"points.grant:{gid}:2", "queued")
    row = grant_row(app, gid)
    assert (row["status"], row["attempts"], row["outbox_tx_id"]) == ("pending", 2, calls[1][0])
    assert row["reserved_day"] == _today()
    assert totals(app) == {0: 500, user_id: 500}  # reserved again, once
    assert len(audits(app, "points.issue_failed")) == 1
    issued = audits(app, "points.issue")
    assert len(issued) == 2 and issued[1].actor == f"user:{staff_id}"
    assert issued[1].details["retry_of"] == first and issued[1].details["attempt"] == 2
    with app.app_context():
        tx = get_db().session.get(OutboxTx, calls[1][0])
        assert tx.args[0] == row["address"] and tx.args[1:] == [500, 1, "welcome"]
        assert tx.sender_kind == "issuer"

    # The second call fails too: failed once more, and the next retry is attempt 3.
    fail_call(app, calls[1][0])
    results = n_at_once(app, 4, retry)
    assert sorted(results) == [0, 0, 0, 1], results
    assert [k for _i, k, _s in issue_calls(app)][2] == f"points.grant:{gid}:3"
    assert len(audits(app, "points.issue_failed")) == 2


def test_a_retry_never_follows_a_call_the_chain_may_still_mine(app, town_id, user_id):
    """The chain is the truth: a failed call that a reorg put back on its way (or mined) is
    never followed by a second issue; once its PointsIssued is indexed the grant is confirmed
    and a retry sends nothing."""
    from backend.chain.indexer.events import ChainEvent, EventSubject
    from backend.points.errors import GrantNotRetryable
    from backend.points.handlers import apply_issued
    from backend.points.services import grant_retries

    staff_id = staff(app, town_id)
    gid, tx_id = grant(app, user_id, town_id)
    fail_call(app, tx_id)
    with app.app_context():
        points_service().grant_states([gid])  # recorded as failed
    before = counts(app)
    tx_hash = "0x" + "ab" * 32
    with app.app_context():
        s = get_db().session
        # What outbox_recovery.reopen and the receipt check do: back on its way, then mined.
        s.execute(
            sa.update(OutboxTx).where(OutboxTx.id == tx_id).values(state="sent", tx_hash=tx_hash)
        )
        s.add(
            OutboxAttempt(
                tx_id=tx_id, kind="call", tx_hash=tx_hash, nonce=0,
                max_fee_per_gas=1, max_priority_fee_per_gas=1,
            )
        )  # fmt: skip
        s.commit()

    def retry() -> tuple[PointsGrant, bool]:
        s = get_db().session
        return grant_retries().retry(s.get(User, staff_id), s.get(Town, town_id), gid)

    with app.app_context(), pytest.raises(GrantNotRetryable):
        retry()
    assert counts(app) == before
    assert grant_row(app, gid)["status"] == "failed"
    with app.app_context():
        s = get_db().session
        s.execute(sa.update(OutboxTx).where(OutboxTx.id == tx_id).values(state="confirmed"))
        s.commit()
        with pytest.raises(GrantNotRetryable):
            retry()
        ev = ChainEvent(
            chain_id=1, contract_key="k", contract_address="0x" + "0" * 40,
            contract_name="RegionPoints", event_name="PointsIssued",
            args={"programmeId": 1, "reason": "welcome", "expiresAt": 0}, block_number=1,
            block_hash="0x" + "1" * 64, tx_hash=tx_hash, log_index=1,
            subject=EventSubject("points_grant", gid),
        )  # fmt: skip
        apply_issued(s, [ev])
        s.commit()
        found, queued = retry()
        assert (found.status, queued) == ("confirmed", False)
    assert counts(app) == before and len(issue_calls(app)) == 1


def test_a_retry_the_day_or_the_programme_refuses_writes_nothing(app, town_id, user_id):
    from backend.points.errors import GrantNotFound
    from backend.points.services import grant_retries

    staff_id = staff(app, town_id)
    caps(app, town_id, person=500)
    gid, tx_id = grant(app, user_id, town_id, key="a")
    fail_call(app, tx_id)
    with app.app_context():
        from backend.points.tasks import fail_lost_grants

        assert fail_lost_grants() == 1
    grant(app, user_id, town_id, key="b")  # takes the day's cap the failure gave back
    before = counts(app)

    def retry() -> tuple[PointsGrant, bool]:
        s = get_db().session
        return grant_retries().retry(s.get(User, staff_id), s.get(Town, town_id), gid)

    with app.app_context(), pytest.raises(DailyCapReached):
        retry()
    assert counts(app) == before
    row = grant_row(app, gid)
    assert (row["status"], row["attempts"], row["outbox_tx_id"]) == ("failed", 1, tx_id)
    assert totals(app) == {0: 500, user_id: 500}
    with app.app_context():
        s = get_db().session
        town_programme(s, town_id, 1).active = False
        s.commit()
        with pytest.raises(ProgrammeInactive):
            retry()
        # An id of nothing (or not a number): not found, nothing written.
        for bad in ("x", "0", str(gid + 1000), "1" * 40):
            with pytest.raises(GrantNotFound):
                grant_retries().retry(s.get(User, staff_id), s.get(Town, town_id), bad)
    assert counts(app) == before
