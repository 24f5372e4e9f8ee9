"""A real Celery worker process (PostgreSQL, Redis) is SIGKILLed while its POST is in flight and
restarted: every event reaches the receiver, and keeping one webhook per webhook-id (as
Standard Webhooks asks receivers to) leaves exactly one per event. The one POST the kill cut
short is the only one sent twice, with the same id and body. Two workers delivering at once
send no event twice."""

from __future__ import annotations

import signal
from pathlib import Path

import sqlalchemy as sa

from backend.core.db import get_db
from backend.webhooks.models import WebhookDelivery
from backend.webhooks.services import DELIVER_TASK, queue_delivery, webhook_service
from tests.conftest import RUN_QUEUE
from tests.webhooks.receiver import Receiver
from tests.webhooks.workers import Beat, start_worker, stop_worker

OWNER = "api_service:1"
EVENTS = [f"issuance:{i}:{state}" for i in range(1, 11) for state in ("confirmed", "failed")]
# The killed worker's lease: what the restarted worker waits before it sends that row again.
# Its POSTs may take up to TIMEOUT on a loaded machine before a late answer counts as a failure
# (and is sent again, rightly, but that would blur what this test counts).
LEASE, TIMEOUT = 6.0, 5.0


def _worker(
    app, tmp: Path, queue: str, log: Path, name: str, lease: float = LEASE, timeout: float = TIMEOUT
):
    return start_worker(
        app,
        tmp,
        queue,
        log,
        name,
        WEBHOOK_LEASE_SECONDS=str(lease),
        WEBHOOK_TIMEOUT=str(timeout),
        WEBHOOK_RETRY_BASE="0.2",
    )


def _beat(app, queue: str) -> Beat:
    return Beat(app, queue, [DELIVER_TASK])


def _setup(app, receiver: Receiver, queue: str) -> str:
    # Kicks after commit go to this test's queue, where its worker listens.
    app.extensions["celery"].conf.task_default_queue = queue
    with app.app_context():
        s = get_db().session
        secret = webhook_service(s).set_endpoint(OWNER, receiver.url).secret
        for event in EVENTS:
            issuance, state = event.split(":")[1:]
            queue_delivery(
                s,
                owner=OWNER,
                event_id=event,
                event_type=f"issuance.{state}",
                payload={"id": int(issuance), "status": state},
            )
        s.commit()
    assert secret is not None
    return secret


def _rows(app) -> dict[str, tuple[str, int]]:
    with app.app_context():
        s = get_db().session
        rows = s.execute(
            sa.select(WebhookDelivery.event_id, WebhookDelivery.state, WebhookDelivery.attempts)
        ).all()
        s.rollback()
        return {e: (state, n) for e, state, n in rows}


def test_worker_killed_mid_delivery_then_restarted(make_app, tmp_path):
    app = make_app()
    queue = f"{RUN_QUEUE}-webhooks-kill"
    log = tmp_path / "worker.log"
    receiver = Receiver()
    receiver.hold_at = 7  # the 7th POST stays open until the worker is dead
    receiver.start()
    worker = None
    try:
        secret = _setup(app, receiver, queue)
        worker = _worker(app, tmp_path, queue, log, "first")
        assert receiver.held.wait(60), log.read_text()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        receiver.release.set()
        at_kill = _rows(app)
        in_flight = receiver.received[6].webhook_id
        assert at_kill[in_flight] == ("delivering", 1)
        states = [state for state, _ in at_kill.values()]
        assert states.count("delivered") == 6 and states.count("pending") == len(EVENTS) - 7
        worker = _worker(app, tmp_path, queue, log, "second")
        with _beat(app, queue):
            receiver.wait_for(
                lambda: {s for s, _ in _rows(app).values()} == {"delivered"}, timeout=90
            )
    finally:
        if worker is not None:
            stop_worker(worker)
        receiver.stop()
    counts = receiver.counts()
    assert set(counts) == set(EVENTS)
    # Sent twice: only the POST the kill cut short, once by each worker, same id and body.
    assert {e: n for e, n in counts.items() if n != 1} == {in_flight: 2}
    twice = [r.body for r in receiver.received if r.webhook_id == in_flight]
    assert twice[0] == twice[1]
    kept = receiver.unique(secret)  # what the service keeps: one per webhook-id, all verified
    assert sorted(kept) == sorted(EVENTS)
    assert kept["issuance:3:failed"]["data"] == {"id": 3, "status": "failed"}
    assert _rows(app)[in_flight] == ("delivered", 2)
    assert all(n == 1 for e, (_, n) in _rows(app).items() if e != in_flight)


def test_two_workers_at_once_send_each_event_once(make_app, tmp_path):
    app = make_app()
    queue = f"{RUN_QUEUE}-webhooks-two"
    log = tmp_path / "worker.log"
    receiver = Receiver().start()
    workers = []
    try:
        secret = _setup(app, receiver, queue)
        # Long leases: no lease runs out here, so a second send could only be a double claim.
        workers = [_worker(app, tmp_path, queue, log, f"w{i}", 120, 60) for i in (1, 2)]
        with _beat(app, queue):
            receiver.wait_for(
                lambda: {s for s, _ in _rows(app).values()} == {"delivered"}, timeout=90
            )
    finally:
        for w in workers:
            stop_worker(w)
        receiver.stop()
    assert receiver.counts() == {e: 1 for e in EVENTS}
    assert sorted(receiver.unique(secret)) == sorted(EVENTS)
