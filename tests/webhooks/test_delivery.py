"""Deliveries on PostgreSQL and SQLite, sent by the worker's task against a real HTTP receiver:
queued once per event id, signed so that the receiver's own check passes, retried with backoff
after 5xx answers or a receiver that is down, given up after the last attempt (staff see it and
can send it again), claimed under a lease that runs out when a worker dies, and never held by two
claimers at once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from backend.core.db import get_db, utcnow
from backend.webhooks import delivery
from backend.webhooks.errors import WebhookUrlRefused
from backend.webhooks.models import WebhookDelivery, WebhookEndpoint
from backend.webhooks.services import queue_delivery, webhook_service
from backend.webhooks.tasks import deliver_due
from backend.webhooks.urls import UrlPolicy
from tests.concurrency import at_once, n_at_once
from tests.webhooks.conftest import FAST_RETRIES

OWNER = "api_service:1"


@pytest.fixture
def app(make_app, any_db_url):
    return make_app(database_url=any_db_url, **FAST_RETRIES)


def _endpoint(app, url: str, owner: str = OWNER) -> str:
    with app.app_context():
        s = get_db().session
        made = webhook_service(s).set_endpoint(owner, url)
        s.commit()
        assert made.secret is not None
        return made.secret


def _queue(app, *events: str, owner: str = OWNER) -> list[bool]:
    with app.app_context():
        s = get_db().session
        added = [
            queue_delivery(
                s,
                owner=owner,
                event_id=e,
                event_type="test.changed",
                payload={"event": e, "amount": "1000", "name": "花子"},
            )
            for e in events
        ]
        s.commit()
        return added


def _rows(app) -> dict[str, WebhookDelivery]:
    with app.app_context():
        s = get_db().session
        rows = s.scalars(sa.select(WebhookDelivery)).all()
        s.expunge_all()
        return {r.event_id: r for r in rows}


def _deliver(app) -> dict[str, int]:
    # .run: in this app's context (calling the task would enter the context of the app that
    # made the default Celery app, the last one built)
    with app.app_context():
        return deliver_due.run()


def _deliver_until(app, receiver, done) -> None:
    def step() -> bool:
        _deliver(app)
        return done()

    receiver.wait_for(step, timeout=30)


def test_each_event_is_queued_once_signed_and_delivered_once(app, receiver):
    secret = _endpoint(app, receiver.url)
    assert _queue(app, "e:1:confirmed", "e:2:confirmed", "e:1:confirmed") == [True, True, False]
    assert _queue(app, "e:1:confirmed") == [False]
    assert _deliver(app)["delivered"] == 2
    assert _deliver(app) == {"delivered": 0, "pending": 0, "failed": 0, "lost": 0}
    assert receiver.counts() == {"e:1:confirmed": 1, "e:2:confirmed": 1}
    kept = receiver.unique(secret)  # raises unless every signature verifies
    assert kept["e:1:confirmed"] == {
        "type": "test.changed",
        "timestamp": kept["e:1:confirmed"]["timestamp"],
        "data": {"event": "e:1:confirmed", "amount": "1000", "name": "花子"},
    }
    rows = _rows(app)
    assert {r.state for r in rows.values()} == {"delivered"}
    assert all(r.attempts == 1 and r.last_status == 200 for r in rows.values())
    assert all(r.claim_token is None and r.delivered_at is not None for r in rows.values())


def test_no_endpoint_no_delivery(app):
    assert _queue(app, "e:1:confirmed", owner="api_service:404") == [False]
    assert _rows(app) == {}


def test_500s_then_delivered_once_with_backoff(app, receiver):
    secret = _endpoint(app, receiver.url)
    receiver.statuses.extend([500, 503, 500])
    _queue(app, "e:9:failed")
    before = utcnow()
    assert _deliver(app)["pending"] == 1
    after = utcnow()
    row = _rows(app)["e:9:failed"]
    assert (row.state, row.attempts, row.last_status, row.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500",
    )
    # base 0.3 s, jittered into [0.5, 1.0] of it, from when the attempt finished
    assert row.next_attempt_at - before >= dt.timedelta(seconds=0.15)
    assert row.next_attempt_at - after <= dt.timedelta(seconds=0.3)
    _deliver_until(app, receiver, lambda: len(receiver.ids()) == 4)
    row = _rows(app)["e:9:failed"]
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 4, 200, "")
    assert receiver.counts() == {"e:9:failed": 4}  # the same webhook-id every time
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1  # the same body: the signature changes with the timestamp only
    assert list(receiver.unique(secret)) == ["e:9:failed"]


def test_receiver_down_then_up(app, receiver):
    _endpoint(app, receiver.url)
    receiver.stop()
    _queue(app, "e:3:confirmed")
    assert _deliver(app)["pending"] == 1
    row = _rows(app)["e:3:confirmed"]
    assert row.state == "pending" and row.attempts == 1 and row.last_status is None
    assert "ConnectionRefusedError" in row.last_error
    receiver.start()  # the same port
    _deliver_until(app, receiver, lambda: receiver.ids() == ["e:3:confirmed"])
    assert _rows(app)["e:3:confirmed"].state == "delivered"


def test_gives_up_after_the_last_attempt_and_staff_can_send_it_again(make_app, pg_url, receiver):
    app = make_app(database_url=pg_url, **{**FAST_RETRIES, "webhook_max_attempts": 3})
    _endpoint(app, receiver.url)
    receiver.statuses.extend([500, 500, 500])
    _queue(app, "e:5:confirmed")
    _deliver_until(app, receiver, lambda: _rows(app)["e:5:confirmed"].state == "failed")
    row = _rows(app)["e:5:confirmed"]
    assert (row.attempts, row.last_error, row.failed_at is not None) == (3, "HTTP 500", True)
    assert _deliver(app)["delivered"] == 0 and len(receiver.ids()) == 3  # no 4th attempt
    with app.app_context():
        s = get_db().session
        service = webhook_service(s)
        assert service.counts(OWNER)["failed"] == 1
        (failed,) = service.deliveries(OWNER, state="failed")
        assert failed.event_id == "e:5:confirmed"
        assert service.retry(OWNER, failed.id).state == "pending"
        s.commit()
        assert service.retry(OWNER, failed.id).state == "pending"  # not failed: unchanged
    _deliver_until(app, receiver, lambda: len(receiver.ids()) == 4)
    row = _rows(app)["e:5:confirmed"]
    assert (row.state, row.attempts) == ("delivered", 1)


def test_a_lease_that_runs_out_lets_another_worker_send_it(app, receiver):
    _endpoint(app, receiver.url)
    _queue(app, "e:6:confirmed")
    now = utcnow()
    retry = delivery.Retry(0.01, 0.05, 10)
    with app.app_context():
        s = get_db().session
        first = delivery.claim_next(s, now, lease=5)
        assert first is not None and first.attempts == 1
        assert delivery.claim_next(s, now + dt.timedelta(seconds=4), lease=5) is None
        # The first worker died: after its lease another claims the row, same event id.
        second = delivery.claim_next(s, now + dt.timedelta(seconds=6), lease=5)
        assert second is not None and second.id == first.id and second.attempts == 2
        assert second.token != first.token
        late = delivery.Outcome(True, status=200, url=receiver.url)
        assert delivery.finish(s, first, late, now, retry) is None  # not its row any more
        assert s.get(WebhookDelivery, first.id).state == "delivering"
        assert delivery.finish(s, second, late, now, retry) == "delivered"


def test_a_refused_url_changes_nothing(make_app, pg_url, receiver):
    app = make_app(database_url=pg_url, webhook_private_urls="off")
    with app.app_context():
        s = get_db().session
        service = webhook_service(s)
        for url in (receiver.url, "http://localhost:1/x", "http://10.0.0.1/x", "not a url"):
            with pytest.raises(WebhookUrlRefused):
                service.set_endpoint(OWNER, url)
        assert s.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0
    # An endpoint set while private URLs were allowed keeps its URL when a change is refused,
    # and a refused URL at send time is an error on the row, not a request.
    secret = _endpoint(make_app(database_url=pg_url), receiver.url)
    with app.app_context():
        s = get_db().session
        with pytest.raises(WebhookUrlRefused):
            webhook_service(s).set_endpoint(OWNER, "http://169.254.169.254/latest/meta-data")
        s.rollback()
        assert webhook_service(s).endpoint(OWNER).url == receiver.url
    assert _queue(app, "e:7:confirmed") == [True]
    assert _deliver(app)["pending"] == 1
    row = _rows(app)["e:7:confirmed"]
    assert row.last_error.startswith("URL refused: ") and receiver.ids() == []
    assert secret.startswith("whsec_")
    # A real chain's policy: https only.
    real = UrlPolicy(https_only=True, allow_private=True)
    with pytest.raises(WebhookUrlRefused):
        real.check(receiver.url)


def test_removed_endpoint_fails_what_is_queued(app, receiver):
    _endpoint(app, receiver.url)
    _queue(app, "e:8:confirmed")
    with app.app_context():
        s = get_db().session
        webhook_service(s).remove_endpoint(OWNER)
        s.commit()
    assert _queue(app, "e:8:failed") == [False]
    assert _deliver(app)["failed"] == 1
    assert _rows(app)["e:8:confirmed"].last_error == "the endpoint has no URL any more"
    assert receiver.ids() == []


def test_rotating_the_secret_signs_with_the_new_one(app, receiver):
    old = _endpoint(app, receiver.url)
    with app.app_context():
        s = get_db().session
        new = webhook_service(s).rotate_secret(OWNER)
        s.commit()
        again = webhook_service(s).set_endpoint(OWNER, receiver.url + "?v=2")
        s.commit()
        assert again.secret is None  # a changed URL keeps the secret
    assert new != old
    _queue(app, "e:10:confirmed")
    _deliver(app)
    assert list(receiver.unique(new)) == ["e:10:confirmed"]
    assert receiver.received[0].path == "/hooks?v=2"


def test_ten_claimers_at_once_never_hold_one_row_twice(app, receiver):
    _endpoint(app, receiver.url)
    events = [f"e:{i}:confirmed" for i in range(40)]
    _queue(app, *events)
    n = 10
    claimed: list[int] = []
    lock = threading.Lock()

    def claim(_i: int) -> None:
        s = get_db().session
        while (c := delivery.claim_next(s, utcnow(), lease=30)) is not None:
            with lock:
                claimed.append(c.id)

    errors = [r for r in n_at_once(app, n, claim) if isinstance(r, BaseException)]
    assert errors == []
    assert len(claimed) == len(set(claimed)) == len(events)
    rows = _rows(app)
    assert {r.state for r in rows.values()} == {"delivering"}
    assert {r.attempts for r in rows.values()} == {1}


def test_ten_workers_delivering_at_once_send_each_event_once(app, receiver):
    secret = _endpoint(app, receiver.url)
    events = [f"e:{i}:confirmed" for i in range(30)]
    _queue(app, *events)
    n = 10
    answers = at_once([lambda: _deliver(app) for _ in range(n)])
    errors = [r for r in answers if isinstance(r, BaseException)]
    assert errors == []
    assert receiver.counts() == {e: 1 for e in events}
    assert set(receiver.unique(secret)) == set(events)


def test_ten_transactions_queueing_one_event_make_one_row(app, receiver):
    _endpoint(app, receiver.url)
    n = 10

    def queue(_i: int) -> object:
        s = get_db().session
        added = queue_delivery(s, owner=OWNER, event_id="e:1:confirmed", event_type="t", payload={})
        s.commit()
        return added

    results = n_at_once(app, n, queue)
    assert sorted(results, key=str) == [False] * (n - 1) + [True]
    assert list(_rows(app)) == ["e:1:confirmed"]


def test_retry_delays_grow_jittered_and_capped():
    retry = delivery.Retry(base=5, cap=6 * 3600, max_attempts=10)
    for n in range(1, 13):
        exact = min(6 * 3600, 5 * 3 ** (n - 1))
        for _ in range(20):
            assert exact * 0.5 <= retry.delay(n) <= exact
    total = sum(min(6 * 3600, 5 * 3 ** (n - 1)) for n in range(1, 10))
    assert 8 * 3600 < total < 11 * 3600  # nine waits: about ten hours before giving up
