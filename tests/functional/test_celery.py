"""A real Celery worker on Redis runs tasks inside the Flask app context."""

from __future__ import annotations

from sqlalchemy import select

from backend.core.db import get_db
from backend.core.models import Heartbeat
from backend.core.tasks import echo, record_heartbeat


def test_task_round_trip_through_redis(app, celery_worker):
    celery = app.extensions["celery"]
    assert celery.conf.broker_url.startswith("redis://")
    result = echo.apply_async(({"town": "更別村", "n": 3},), ignore_result=False)
    # The worker sees the same database as the app: the task ran in the app context.
    assert result.get(timeout=20) == {
        "payload": {"town": "更別村", "n": 3},
        "dialect": "postgresql",
    }


def test_beat_heartbeat_task_writes_through_the_worker(app, celery_worker):
    seen = record_heartbeat.apply_async(("worker",), ignore_result=False).get(timeout=20)
    with app.app_context():
        row = get_db().session.scalar(select(Heartbeat).where(Heartbeat.name == "worker"))
        assert row is not None and row.seen_at.isoformat() == seen


def test_the_platforms_tasks_leave_no_result_behind(app, celery_worker):
    """Nothing reads a platform task's return value (backend/core/celery_app.py): a task the
    web side publishes, or one a caller sends plainly, writes no result. The solo worker runs
    the queue in order, so once a later task's asked-for result is in, the earlier ones ran."""
    import redis
    from celery.signals import before_task_publish

    from backend.core.broker import publish

    celery = app.extensions["celery"]
    client = redis.Redis.from_url(celery.conf.result_backend)
    sent: list[str] = []

    def note(headers: dict, **_: object) -> None:
        sent.append(headers["id"])

    before_task_publish.connect(note, weak=False)
    try:
        plain = record_heartbeat.delay("plain")
        assert publish(celery, "core.record_heartbeat", ["published"])
    finally:
        before_task_publish.disconnect(note)
    asked = echo.apply_async(({"after": "both"},), ignore_result=False)
    assert asked.get(timeout=20)["payload"] == {"after": "both"}
    with app.app_context():
        names = set(get_db().session.scalars(select(Heartbeat.name)))
    try:
        assert {"plain", "published"} <= names  # both ran before the one asked about
        assert len(sent) == 2 and sent[0] == plain.id
        assert client.exists(f"celery-task-meta-{asked.id}") == 1  # where a result is kept
        assert [client.exists(f"celery-task-meta-{i}") for i in sent] == [0, 0]
    finally:
        client.close()


def test_send_task_asks_for_no_result_unless_told(app):
    """Celery's own send_task waits for a result (it subscribes to it on Redis) unless each
    call says otherwise; the platform's follows task_ignore_result, as apply_async does."""
    celery = app.extensions["celery"]
    try:
        assert celery.send_task("core.record_heartbeat", args=["a"]).ignored is True
        asked = celery.send_task("core.record_heartbeat", args=["b"], ignore_result=False)
        assert asked.ignored is False
    finally:
        with celery.connection_for_write() as conn:
            conn.default_channel.queue_purge(celery.conf.task_default_queue)
