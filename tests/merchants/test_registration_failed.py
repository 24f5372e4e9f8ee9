"""A shop whose addMerchant call fails on chain is not left "registering" for ever, on
PostgreSQL and on SQLite: seen failed by ten followers at once (the beat task, the staff's list
and its JSON), it becomes "failed" once with one audit row; ten "register again" at once queue
one new call under a new outbox key (the failed call keeps its own); a retry never follows a
call the chain may still mine; an addMerchant mined after all makes the shop active.

The outbox's failure is made as the outbox makes it when an estimate reverts: the queued row
moves to "failed" with the decoded error (backend/chain/outbox/states.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.chain.outbox import outbox_service
from backend.chain.outbox_models import OutboxTx
from backend.core.db import get_db
from backend.core.errors import AppError, Forbidden
from backend.merchants.errors import MerchantNotFound
from backend.merchants.models import Merchant
from backend.merchants.services import merchant_service
from backend.regions.models import Town
from tests.concurrency import n_at_once
from tests.merchants.registration_helpers import (
    ERROR,
    add_calls,
    audits,
    counts,
    fail_call,
    register,
    status,
)


@pytest.fixture
def app(make_app, deployed, any_db_url):
    app = make_app(database_url=any_db_url)
    with app.app_context():
        outbox_service().auto_dispatch = False  # nothing is sent: the rows are the subject
    return app


def test_a_failure_seen_ten_times_at_once_fails_the_shop_once(app, world):
    mid, tx_id = register(world)
    fail_call(app, tx_id)

    def follow(i: int) -> str:
        s = get_db().session
        if i % 2:
            from backend.merchants.registration_tasks import fail_lost_registrations

            fail_lost_registrations()
            return s.get(Merchant, mid).status
        rows = merchant_service().town_merchants(world.user(world.staff), world.town())
        return next(m.status for m in rows if m.id == mid)

    results = n_at_once(app, 10, follow)
    assert results == ["failed"] * 10, results
    (audit,) = audits(app, "merchant.register_failed", mid)
    assert audit.actor == "system:outbox" and audit.town_id == world.town_id
    assert (audit.details["tx_state"], audit.details["error"]) == ("failed", ERROR)
    assert audit.details["outbox_tx_id"] == tx_id
    assert status(app, mid) == ("failed", tx_id)
    with app.app_context():
        from backend.merchants.registration_tasks import fail_lost_registrations

        assert fail_lost_registrations() == 0
    assert len(audits(app, "merchant.register_failed", mid)) == 1


def test_ten_retries_at_once_register_the_shop_once_under_a_new_key(app, world):
    mid, first = register(world)
    fail_call(app, first)

    def retry(_i: int) -> bool:
        s = get_db().session
        return merchant_service().retry_registration(
            world.user(world.staff), s.get(Town, world.town_id), mid
        )[1]

    results = n_at_once(app, 10, retry)
    assert sorted(results) == [False] * 9 + [True], results
    calls = add_calls(app, mid)
    assert calls[0] == (first, f"merchants.add:{mid}", "failed")
    assert len(calls) == 2 and calls[1][1:] == (f"merchants.add:{mid}:2", "queued")
    assert status(app, mid) == ("registering", calls[1][0])
    assert len(audits(app, "merchant.register_failed", mid)) == 1
    registered = audits(app, "merchant.register", mid)
    assert len(registered) == 2 and registered[1].details["attempt"] == 2

    fail_call(app, calls[1][0])  # failed again: failed once more, the next key is :3
    results = n_at_once(app, 4, retry)
    assert sorted(results) == [False, False, False, True], results
    assert [k for _i, k, _s in add_calls(app, mid)][2] == f"merchants.add:{mid}:3"
    assert len(audits(app, "merchant.register_failed", mid)) == 2


def test_a_retry_never_follows_a_call_the_chain_may_still_mine(app, world):
    from backend.chain.indexer.events import ChainEvent
    from backend.merchants.handlers import apply_added

    mid, tx_id = register(world)
    fail_call(app, tx_id)
    with app.app_context():
        merchant_service().town_merchants(world.user(world.staff), world.town())  # follows it
    assert status(app, mid) == ("failed", tx_id)
    with app.app_context():  # a reorg put the call back on its way (outbox_recovery.reopen)
        s = get_db().session
        s.execute(sa.update(OutboxTx).where(OutboxTx.id == tx_id).values(state="sent"))
        s.commit()
    before = counts(app)

    def retry(email: str, merchant_id: object) -> tuple[Merchant, bool]:
        return merchant_service().retry_registration(world.user(email), world.town(), merchant_id)

    with app.app_context():
        with pytest.raises(AppError) as refused:
            retry(world.staff, mid)
        assert refused.value.status == 409 and refused.value.code == "registration_on_its_way"
        # Another town's staff, another town's shop, an id of nothing: refused.
        with pytest.raises(Forbidden):
            retry(world.other_staff, mid)
        for bad in (world.other_merchant_id, "x", 0, mid + 1000):
            with pytest.raises(MerchantNotFound):
                retry(world.staff, bad)
    assert counts(app) == before and status(app, mid) == ("failed", tx_id)

    with app.app_context():  # ... and mined: MerchantAdded makes the shop active
        s = get_db().session
        address = s.get(Merchant, mid).address
        ev = ChainEvent(
            chain_id=1, contract_key="k", contract_address="0x" + "0" * 40,
            contract_name="RegionPoints", event_name="MerchantAdded",
            args={"merchant": address}, block_number=1, block_hash="0x" + "1" * 64,
            tx_hash="0x" + "2" * 64, log_index=0,
        )  # fmt: skip
        apply_added(s, [ev])
        s.commit()
        m, queued = retry(world.staff, mid)
        assert (m.status, queued) == ("active", False)
    assert counts(app) == before
