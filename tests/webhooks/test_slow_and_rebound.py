"""What a hostile or broken receiver cannot do to the webhook worker: keep it past its timeout by
trickling an answer (a worker tied up, its lease run out, the event sent twice by the next
worker), make it read a huge answer, or move the POST inside the platform's network by
answering the URL check with a public address and the connection's look-up with 127.0.0.1 (DNS
rebinding). And a delivery whose attempt raises, or whose workers all died mid-POST, stops
instead of being claimed again after every lease for ever."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from backend.core.db import get_db, utcnow
from backend.webhooks import delivery, tasks
from backend.webhooks.models import WebhookDelivery
from backend.webhooks.services import queue_delivery, webhook_service
from backend.webhooks.signing import seal
from backend.webhooks.urls import UrlPolicy
from tests.webhooks.conftest import FAST_RETRIES

KEY = "test-secret-key"
OWNER = "api_service:7"


class Trickler:
    """An HTTP server on loopback that answers `head` at once, then `tail` one byte every
    `pause` seconds."""

    def __init__(self, head: bytes, tail: bytes, pause: float = 0.2) -> None:
        self.head, self.tail, self.pause = head, tail, pause
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(self.head)
                for i in range(len(self.tail)):
                    time.sleep(self.pause)
                    conn.sendall(self.tail[i : i + 1])
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()


def _claim(url: str) -> delivery.Claim:
    return delivery.Claim(
        id=1,
        token="t",
        attempts=1,
        event_id="issuance:1:confirmed",
        event_type="issuance.confirmed",
        created_at=utcnow(),
        payload={"id": 1},
        owner=OWNER,
        url=url,
        sealed=seal(KEY, OWNER, "whsec_" + "A" * 32),
    )


def _attempt(url: str, policy: UrlPolicy | None = None, timeout: float = 1.0) -> delivery.Outcome:
    policy = policy or UrlPolicy(https_only=False, allow_private=True)
    return delivery.attempt(
        _claim(url), secret_key=KEY, policy=policy, timeout=timeout, now=utcnow()
    )


@pytest.fixture
def trickling_body() -> Iterator[Trickler]:
    # 200 at once, then a 1 MB body announced and sent a byte every 0.2 s
    t = Trickler(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", b"x" * 100)
    yield t
    t.close()


@pytest.fixture
def trickling_headers() -> Iterator[Trickler]:
    t = Trickler(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"y" * 100)
    yield t
    t.close()


def test_a_trickled_body_is_never_read(trickling_body):
    started = time.monotonic()
    outcome = _attempt(f"http://127.0.0.1:{trickling_body.port}/hook")
    assert outcome.ok and outcome.status == 200
    assert time.monotonic() - started < 1.0  # before: the whole body, 20 s


def test_trickled_headers_are_cut_off_at_the_timeout(trickling_headers):
    started = time.monotonic()
    outcome = _attempt(f"http://127.0.0.1:{trickling_headers.port}/hook", timeout=1.0)
    took = time.monotonic() - started
    assert not outcome.ok and outcome.error == "Timeout: no answer within 1 s"
    assert 0.9 < took < 2.0  # before: 20 s, each byte within the per-read timeout


def test_the_post_goes_to_the_address_that_was_checked(receiver):
    """localhost resolves to 127.0.0.1; the check's resolver (a rebinding DNS server) said it
    was public. The POST must go to the checked address, not to a second look-up's answer."""
    rebinding = UrlPolicy(
        https_only=False, allow_private=False, resolver=lambda host, port: ["93.184.215.14"]
    )
    assert rebinding.check(f"http://localhost:{receiver.port}/hooks")  # public, it says
    outcome = _attempt(f"http://localhost:{receiver.port}/hooks", rebinding, timeout=0.5)
    assert not outcome.ok
    assert receiver.ids() == []  # before: delivered to 127.0.0.1


def test_the_request_carries_the_host_name_and_the_path(receiver):
    outcome = _attempt(f"http://localhost:{receiver.port}/hooks/a b?x=1#frag")
    assert outcome.ok and outcome.status == 200
    [got] = receiver.received
    assert got.path == "/hooks/a%20b?x=1"
    assert got.headers["host"] == f"localhost:{receiver.port}"
    assert got.headers["webhook-id"] == "issuance:1:confirmed"


@pytest.fixture
def app(make_app, any_db_url):
    return make_app(database_url=any_db_url, **{**FAST_RETRIES, "webhook_max_attempts": 3})


def _queued(app, url: str) -> None:
    with app.app_context():
        s = get_db().session
        webhook_service(s).set_endpoint(OWNER, url)
        queue_delivery(s, owner=OWNER, event_id="e:1", event_type="t.changed", payload={})
        s.commit()


def _row(app) -> WebhookDelivery:
    with app.app_context():
        s = get_db().session
        row = s.scalars(sa.select(WebhookDelivery)).one()
        s.expunge_all()
        return row


def test_an_attempt_that_raises_is_a_failed_attempt(app, receiver, monkeypatch):
    _queued(app, receiver.url)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(tasks, "attempt", broken)
    with app.app_context():
        counts = tasks.deliver_due.run()  # before: RuntimeError, the row left delivering
    assert counts["pending"] == 1
    row = _row(app)
    assert (row.state, row.attempts, row.claim_token) == ("pending", 1, None)
    assert row.last_error == "RuntimeError: a bug"


def test_a_delivery_whose_workers_all_died_gives_up(app, receiver):
    _queued(app, receiver.url)
    with app.app_context():
        s = get_db().session
        # Three workers claimed it and died mid-POST (max attempts 3); the last lease ran out.
        s.execute(
            sa.update(WebhookDelivery).values(
                state="delivering",
                attempts=3,
                claim_token="dead",
                claimed_until=utcnow() - dt.timedelta(seconds=1),
            )
        )
        s.commit()
        counts = tasks.deliver_due.run()
    assert counts["failed"] == 1 and receiver.ids() == []  # before: a fourth POST, and more
    row = _row(app)
    assert (row.state, row.attempts) == ("failed", 4)
    assert row.last_error == "no attempt finished: given up"
